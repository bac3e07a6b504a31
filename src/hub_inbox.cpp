// A worker's inbox on a shared AMQP connection; see hub_inbox.h.
#include "hub_inbox.h"

namespace rmq2pg {

void Inbox::put(Delivery delivery) {
    {
        std::lock_guard<std::mutex> guard(lock_);
        if (failure_)
            return;  // its channel is gone: the broker has requeued it
        deliveries_.push_back(std::move(delivery));
    }
    arrived_.notify_one();
}

void Inbox::fail(const AmqpError& error) {
    std::deque<Delivery> dropped;
    {
        std::lock_guard<std::mutex> guard(lock_);
        if (!failure_)
            failure_.emplace(error);
        dropped.swap(deliveries_);
    }
    arrived_.notify_all();
    // `dropped` frees its blocks here, outside the lock.
}

std::optional<Delivery> Inbox::take(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> guard(lock_);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    arrived_.wait_until(guard, deadline, [this] { return failure_ || !deliveries_.empty(); });
    if (failure_)
        throw *failure_;
    if (deliveries_.empty())
        return std::nullopt;
    Delivery delivery = std::move(deliveries_.front());
    deliveries_.pop_front();
    return delivery;
}

void Inbox::check() const {
    std::lock_guard<std::mutex> guard(lock_);
    if (failure_)
        throw *failure_;
}

std::size_t Inbox::size() const {
    std::lock_guard<std::mutex> guard(lock_);
    return deliveries_.size();
}

bool Inbox::failed() const {
    std::lock_guard<std::mutex> guard(lock_);
    return failure_.has_value();
}

}  // namespace rmq2pg
