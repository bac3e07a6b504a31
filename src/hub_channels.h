// Which channel of a shared AMQP connection each subscription (one worker's consumer) holds, and
// whether a settle posted by a worker still applies: the generation filter. Pure bookkeeping of
// the hub thread (amqp_hub.cpp), unit-tested without a broker.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

namespace rmq2pg {

// Channel 1 is the hub's control channel (declarations); consumers get 2..max. A closed channel's
// number goes to the back of the free list, so it is reused only after every other free number:
// frames of the old channel that rabbitmq-c queued during the close are read (and dropped, no
// subscription owns the number) long before a new consumer could receive them.
// Thread ownership: the hub thread only.
class ChannelTable {
  public:
    static constexpr std::uint16_t kControlChannel = 1;

    // `max_channel`: the connection's negotiated channel_max (0 = the protocol's 65535).
    explicit ChannelTable(std::uint16_t max_channel);

    // A channel for `subscription` on the connection of `generation`; nullopt when every number
    // is taken.
    std::optional<std::uint16_t> open(std::uint64_t subscription, std::uint64_t generation);
    // The subscription no longer holds its channel (closed by us or by the broker).
    void close(std::uint64_t subscription);
    // The connection is gone: every channel with it. Returns the subscriptions that held one.
    std::vector<std::uint64_t> connection_lost();

    // The generation filter: the channel a settle of `subscription`, posted for the connection
    // of `generation`, goes to; nullopt when it no longer applies (the channel or the
    // connection it was received on is gone: the broker has requeued those deliveries, and
    // their tags mean nothing on any other channel).
    std::optional<std::uint16_t> channel_for(std::uint64_t subscription,
                                             std::uint64_t generation) const;
    // Who receives a delivery that arrived on `channel`; nullopt for a channel nobody holds.
    std::optional<std::uint64_t> subscription_on(std::uint16_t channel) const;

    std::size_t open_channels() const { return by_subscription_.size(); }

  private:
    struct Held {
        std::uint16_t channel;
        std::uint64_t generation;
    };
    std::map<std::uint64_t, Held> by_subscription_;
    std::map<std::uint16_t, std::uint64_t> by_channel_;
    std::deque<std::uint16_t> free_;
};

}  // namespace rmq2pg
