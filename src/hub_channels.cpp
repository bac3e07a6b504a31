// Channels of a shared AMQP connection and the generation filter; see hub_channels.h.
#include "hub_channels.h"

namespace rmq2pg {

ChannelTable::ChannelTable(std::uint16_t max_channel) {
    std::uint16_t last = max_channel == 0 ? 65535 : max_channel;
    for (std::uint32_t c = kControlChannel + 1; c <= last; ++c)
        free_.push_back(static_cast<std::uint16_t>(c));
}

std::optional<std::uint16_t> ChannelTable::open(std::uint64_t subscription,
                                                std::uint64_t generation) {
    if (free_.empty() || by_subscription_.count(subscription) != 0)
        return std::nullopt;
    std::uint16_t channel = free_.front();
    free_.pop_front();
    by_subscription_[subscription] = Held{channel, generation};
    by_channel_[channel] = subscription;
    return channel;
}

void ChannelTable::close(std::uint64_t subscription) {
    auto it = by_subscription_.find(subscription);
    if (it == by_subscription_.end())
        return;
    by_channel_.erase(it->second.channel);
    free_.push_back(it->second.channel);
    by_subscription_.erase(it);
}

std::vector<std::uint64_t> ChannelTable::connection_lost() {
    std::vector<std::uint64_t> lost;
    for (const auto& [subscription, held] : by_subscription_) {
        lost.push_back(subscription);
        free_.push_back(held.channel);
    }
    by_subscription_.clear();
    by_channel_.clear();
    return lost;
}

std::optional<std::uint16_t> ChannelTable::channel_for(std::uint64_t subscription,
                                                       std::uint64_t generation) const {
    auto it = by_subscription_.find(subscription);
    if (it == by_subscription_.end() || it->second.generation != generation)
        return std::nullopt;
    return it->second.channel;
}

std::optional<std::uint64_t> ChannelTable::subscription_on(std::uint16_t channel) const {
    auto it = by_channel_.find(channel);
    if (it == by_channel_.end())
        return std::nullopt;
    return it->second;
}

}  // namespace rmq2pg
