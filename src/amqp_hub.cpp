// A shared AMQP connection serving many workers' consumers; see amqp_hub.h. Design: the thread
// turns one loop — run the posted commands (subscribe, settle, unsubscribe) in the order they
// were posted, read what deliveries the socket holds (at most kDeliveriesPerTurn, so settles are
// never starved by a busy queue) and hand each to the inbox of the channel it came on, then
// sleep in poll() on the socket and the eventfd for at most kIdleWait. rabbitmq-c sends and
// checks heartbeats inside each read, and the loop reads at least every kIdleWait.
#include "amqp_hub.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rmq2pg {
namespace {

// Deliveries read per turn before the posted commands run again: acks wait at most this many
// reads behind a busy queue.
constexpr int kDeliveriesPerTurn = 64;
// The longest sleep without reading: bounds when a heartbeat is sent (heartbeat_s is at least 1
// when on) and when stop() is noticed without a wake.
constexpr std::chrono::milliseconds kIdleWait{250};

std::string host_and_pid() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    return std::string(host) + " pid " + std::to_string(getpid());
}

}  // namespace

AmqpHub::AmqpHub(std::shared_ptr<const Config> config, int index)
    : config_(std::move(config)),
      index_(index),
      connection_name_("rmq2pg shared connection " + std::to_string(index) + " on " +
                       host_and_pid()),
      dead_letters_(std::make_shared<SharedDeadLetters>(
          *config_,
          "rmq2pg shared connection " + std::to_string(index) + " dead letters on " +
              host_and_pid(),
          static_cast<std::size_t>(index) % config_->amqp_urls.size())),
      // Hubs start on different brokers of a cluster, as workers do.
      url_index_(static_cast<std::size_t>(index) % config_->amqp_urls.size()),
      backoff_(
          std::chrono::milliseconds(config_->retry.initial_ms),
          std::chrono::milliseconds(config_->retry.max_ms),
          static_cast<std::uint64_t>(getpid()) * 1000 + 900 + static_cast<std::uint64_t>(index)) {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0)
        throw std::runtime_error(std::string("eventfd for a shared AMQP connection: ") +
                                 std::strerror(errno));
    thread_ = std::thread([this] { run(); });
}

AmqpHub::~AmqpHub() {
    stop(std::chrono::milliseconds(0));
    if (thread_.joinable())
        thread_.join();
    ::close(wake_fd_);
}

void AmqpHub::post(Command command) {
    {
        std::lock_guard<std::mutex> guard(lock_);
        commands_.push_back(std::move(command));
    }
    std::uint64_t one = 1;
    // Can only fail when the counter is saturated, which still wakes the hub.
    [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof one);
}

void AmqpHub::wait_reply(Reply& reply, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> guard(reply.lock);
    if (!reply.done_cv.wait_for(guard, timeout, [&] { return reply.done; }))
        reply.abandoned = true;
}

AmqpHub::Subscription AmqpHub::subscribe(const ConsumerSpec& spec,
                                         std::chrono::milliseconds timeout) {
    auto reply = std::make_shared<Reply>();
    Command command{Command::Kind::subscribe, reply, spec};
    post(std::move(command));
    wait_reply(*reply, timeout);
    std::lock_guard<std::mutex> guard(reply->lock);
    if (!reply->done)
        throw AmqpError(AmqpError::Kind::connection,
                        connection_name_ + ": no answer to consuming queue '" + spec.queue +
                            "' within " + std::to_string(timeout.count()) + " ms");
    if (reply->error)
        throw *reply->error;
    return reply->subscription;
}

void AmqpHub::settle(const Subscription& subscription, Settle kind, std::uint64_t delivery_tag) {
    Command command{Command::Kind::settle, nullptr, {}};
    command.id = subscription.id;
    command.generation = subscription.generation;
    command.settle = kind;
    command.delivery_tag = delivery_tag;
    post(std::move(command));
}

void AmqpHub::unsubscribe(const Subscription& subscription, std::chrono::milliseconds timeout) {
    auto reply = std::make_shared<Reply>();
    Command command{Command::Kind::unsubscribe, reply, {}};
    command.id = subscription.id;
    command.generation = subscription.generation;
    post(std::move(command));
    wait_reply(*reply, timeout);
}

void AmqpHub::stop(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> guard(lock_);
    if (!stopping_) {
        stopping_ = true;
        std::uint64_t one = 1;
        [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof one);
    }
    finished_cv_.wait_for(guard, timeout, [this] { return finished_; });
}

void AmqpHub::run() {
    while (true) {
        if (!session_ && std::chrono::steady_clock::now() >= next_attempt_) {
            bool stopping;
            {
                std::lock_guard<std::mutex> guard(lock_);
                stopping = stopping_;
            }
            if (!stopping)
                connect();
        }
        std::deque<Command> commands;
        bool stopping;
        {
            std::lock_guard<std::mutex> guard(lock_);
            commands.swap(commands_);
            stopping = stopping_;
        }
        if (!session_) {
            answer_disconnected(commands);
            if (stopping)
                break;
            wait_for_wake(std::chrono::ceil<std::chrono::milliseconds>(
                next_attempt_ - std::chrono::steady_clock::now()));
            continue;
        }
        try {
            for (auto& command : commands)
                run_command(command);
            // Commands posted before stop() have run: the workers are gone.
            if (stopping)
                break;
            read_deliveries();
            bool more;
            {
                std::lock_guard<std::mutex> guard(lock_);
                more = !commands_.empty() || stopping_;
            }
            if (!more && !session_->wait_readable(kIdleWait, wake_fd_))
                wait_for_wake(std::chrono::milliseconds(0));  // clears the eventfd
        } catch (const AmqpChannelError& e) {
            channel_failed(e);
        } catch (const AmqpError& e) {
            connection_lost(e);
        } catch (const std::exception& e) {
            // Out of memory, a thread resource: nothing of the connection can be trusted.
            connection_lost(AmqpError(AmqpError::Kind::connection, e.what()));
        }
    }
    // A polite close: anything still unacked returns to its queue.
    for (auto& [id, consumer] : consumers_)
        consumer.inbox->fail(AmqpError(AmqpError::Kind::connection,
                                       connection_name_ + " closed (rmq2pg is stopping)"));
    consumers_.clear();
    session_.reset();
    connected_ = false;
    channels_ = 0;
    std::lock_guard<std::mutex> guard(lock_);
    finished_ = true;
    finished_cv_.notify_all();
}

void AmqpHub::connect() {
    const AmqpUrl& url = config_->amqp_urls[url_index_];
    try {
        session_ = std::make_unique<AmqpSession>(url, config_->heartbeat_s, connection_name_);
        table_.emplace(session_->channel_max());
        ++generation_;
        backoff_.reset();
        connects_++;
        connected_ = true;
        spdlog::info("{}: connected to {} (generation {})", connection_name_, url.masked(),
                     generation_);
    } catch (const AmqpError& e) {
        session_.reset();
        last_error_ = e.what();
        auto delay = backoff_.next_delay();
        next_attempt_ = std::chrono::steady_clock::now() + delay;
        url_index_ = (url_index_ + 1) % config_->amqp_urls.size();
        spdlog::error("{}: {}; retrying in {} ms", connection_name_, e.what(), delay.count());
    }
}

void AmqpHub::answer_disconnected(std::deque<Command>& commands) {
    for (auto& command : commands) {
        if (!command.reply)
            continue;  // a settle of a connection that is gone: the broker requeued those
        std::lock_guard<std::mutex> guard(command.reply->lock);
        if (command.kind == Command::Kind::subscribe)
            command.reply->error.emplace(AmqpError::Kind::connection,
                                         connection_name_ + " is not connected: " + last_error_);
        command.reply->done = true;
        command.reply->done_cv.notify_all();
    }
    commands.clear();
}

void AmqpHub::wait_for_wake(std::chrono::milliseconds timeout) {
    pollfd fd{wake_fd_, POLLIN, 0};
    if (timeout.count() > 0)
        ::poll(&fd, 1, static_cast<int>(std::min(timeout, kIdleWait).count()));
    std::uint64_t count = 0;
    [[maybe_unused]] auto read = ::read(wake_fd_, &count, sizeof count);
}

void AmqpHub::run_command(Command& command) {
    switch (command.kind) {
        case Command::Kind::subscribe:
            open_consumer(command);
            return;
        case Command::Kind::unsubscribe:
            close_consumer(command);
            return;
        case Command::Kind::settle: {
            // The generation filter: a settle of a channel or connection that is gone is
            // dropped (the broker requeued those deliveries; their tags are void).
            auto channel = table_->channel_for(command.id, command.generation);
            if (!channel)
                return;
            if (command.settle == Settle::reject)
                session_->reject_on(*channel, command.delivery_tag);
            else
                session_->ack_on(*channel, command.delivery_tag, command.settle == Settle::up_to);
            return;
        }
    }
}

void AmqpHub::open_consumer(Command& command) {
    Reply& reply = *command.reply;
    {
        std::lock_guard<std::mutex> guard(reply.lock);
        if (reply.abandoned)
            return;  // the worker gave up waiting: it will ask again
    }
    auto answer = [&](const AmqpError* error, const Subscription& subscription) {
        std::lock_guard<std::mutex> guard(reply.lock);
        if (error)
            reply.error.emplace(*error);
        reply.subscription = subscription;
        reply.done = true;
        reply.done_cv.notify_all();
        return !reply.abandoned;
    };
    const ConsumerSpec& spec = command.spec;
    std::uint64_t id = next_id_++;
    std::optional<std::uint16_t> channel;
    try {
        // On the control channel, as a connection of the worker's own declared them: a
        // conflict pauses that worker's pipeline only.
        for (const auto& exchange : config_->exchanges)
            session_->declare_exchange(exchange);
        if (spec.declare)
            session_->declare_queue(spec.queue, *spec.declare);
        channel = table_->open(id, generation_);
        if (!channel) {
            AmqpError full(AmqpError::Kind::channel, connection_name_ +
                                                         ": every channel is taken (channel_max " +
                                                         std::to_string(session_->channel_max()) +
                                                         "): raise amqp.connections");
            answer(&full, {});
            return;
        }
        session_->open_channel(*channel);
        session_->consume_on(*channel, spec.queue, spec.prefetch, spec.consumer_tag);
    } catch (const AmqpChannelError& e) {
        // The broker closed one channel (and we answered close-ok): the connection is fine.
        if (channel)
            table_->close(id);
        answer(&e, {});
        if (e.channel() == ChannelTable::kControlChannel)
            session_->open_channel(ChannelTable::kControlChannel);
        return;
    } catch (const AmqpError& e) {
        if (channel)
            table_->close(id);
        answer(&e, {});
        throw;  // the connection is gone
    }
    auto inbox = std::make_shared<Inbox>();
    consumers_[id] = Consumer{inbox, spec.consumer_tag};
    channels_ = table_->open_channels();
    if (!answer(nullptr, Subscription{id, generation_, inbox})) {
        // Nobody took it: give it back at once.
        Command close{Command::Kind::unsubscribe, std::make_shared<Reply>(), {}};
        close.id = id;
        close.generation = generation_;
        close_consumer(close);
    }
}

void AmqpHub::close_consumer(Command& command) {
    auto done = [&] {
        std::lock_guard<std::mutex> guard(command.reply->lock);
        command.reply->done = true;
        command.reply->done_cv.notify_all();
    };
    auto channel = table_->channel_for(command.id, command.generation);
    auto consumer = consumers_.find(command.id);
    if (!channel || consumer == consumers_.end()) {
        done();  // its channel is already gone: the broker requeued what it held
        return;
    }
    std::string consumer_tag = consumer->second.consumer_tag;
    consumer->second.inbox->fail(AmqpError(AmqpError::Kind::channel, "consumer closed"));
    consumers_.erase(consumer);
    table_->close(command.id);
    channels_ = table_->open_channels();
    try {
        session_->give_back_and_close(*channel, consumer_tag);
    } catch (const AmqpChannelError&) {
        // The broker closed that channel meanwhile: it requeued what the channel held.
    } catch (const AmqpError&) {
        done();
        throw;
    }
    done();
}

void AmqpHub::read_deliveries() {
    for (int i = 0; i < kDeliveriesPerTurn; ++i) {
        auto delivery = session_->next_delivery(std::chrono::milliseconds(0));
        if (!delivery)
            return;
        auto owner = table_->subscription_on(delivery->channel);
        auto consumer = owner ? consumers_.find(*owner) : consumers_.end();
        // A channel nobody holds: frames of a consumer closed meanwhile, whose deliveries were
        // given back with it.
        if (consumer != consumers_.end())
            consumer->second.inbox->put(std::move(*delivery));
    }
}

void AmqpHub::channel_failed(const AmqpChannelError& error) {
    auto owner = table_->subscription_on(error.channel());
    if (!owner) {
        if (error.channel() == ChannelTable::kControlChannel) {
            try {
                session_->open_channel(ChannelTable::kControlChannel);
            } catch (const AmqpError& e) {
                connection_lost(e);
            }
        }
        return;
    }
    spdlog::warn("{}: channel {}: {}", connection_name_, error.channel(), error.what());
    if (auto consumer = consumers_.find(*owner); consumer != consumers_.end()) {
        consumer->second.inbox->fail(error);
        consumers_.erase(consumer);
    }
    table_->close(*owner);
    channels_ = table_->open_channels();
    if (!error.still_open())
        return;
    try {
        session_->close_channel(error.channel());
    } catch (const AmqpChannelError&) {
        // Already closed by the broker.
    } catch (const AmqpError& e) {
        connection_lost(e);
    }
}

void AmqpHub::connection_lost(const AmqpError& error) {
    last_error_ = error.what();
    AmqpError lost(error.kind() == AmqpError::Kind::refused ? AmqpError::Kind::refused
                                                            : AmqpError::Kind::connection,
                   connection_name_ + ": " + error.what());
    for (auto& [id, consumer] : consumers_)
        consumer.inbox->fail(lost);
    spdlog::error("{}: {}; {} consumers lose their channel, reconnecting", connection_name_,
                  error.what(), consumers_.size());
    consumers_.clear();
    table_.reset();
    session_.reset();
    connected_ = false;
    channels_ = 0;
    url_index_ = (url_index_ + 1) % config_->amqp_urls.size();
    next_attempt_ = std::chrono::steady_clock::now() + backoff_.next_delay();
}

}  // namespace rmq2pg
