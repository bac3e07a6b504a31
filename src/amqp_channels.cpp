// AmqpSession's channels beyond its own: a shared connection (amqp_hub.cpp) consumes one queue
// per channel. Every RPC's reply goes through check_on(), which answers a server's close on the
// channel the request went to; a close of a consumer's channel throws AmqpChannelError.
#include <poll.h>

#include <cerrno>

#include "amqp_internal.h"

namespace rmq2pg {
namespace {

void check_on(AmqpConnection& connection, amqp_channel_t channel, std::string_view operation) {
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection.state);
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION)
        server_closed(connection, reply.reply, channel, operation, CloseArrived::as_reply);
    check(connection, reply, operation);
}

std::string on_channel(std::string_view what, amqp_channel_t channel) {
    return std::string(what) + " (channel " + std::to_string(channel) + ") on";
}

}  // namespace

std::uint16_t AmqpSession::channel_max() const {
    return static_cast<std::uint16_t>(amqp_get_channel_max(connection_->state));
}

void AmqpSession::open_channel(std::uint16_t channel) {
    amqp_channel_open(connection_->state, channel);
    check_on(*connection_, channel, on_channel("channel.open", channel));
}

void AmqpSession::consume_on(std::uint16_t channel, const std::string& queue,
                             std::uint16_t prefetch, const std::string& consumer_tag) {
    AmqpConnection& connection = *connection_;
    amqp_basic_qos(connection.state, channel, 0, prefetch, 0);
    check_on(connection, channel, on_channel("basic.qos", channel));
    amqp_basic_consume(connection.state, channel, as_bytes(queue), as_bytes(consumer_tag), 0, 0, 0,
                       amqp_empty_table);
    check_on(connection, channel, on_channel("basic.consume on queue '" + queue + "'", channel));
}

// The texts are built only on failure: every batch is acked.
void AmqpSession::ack_on(std::uint16_t channel, std::uint64_t delivery_tag, bool multiple) {
    if (int status = amqp_basic_ack(connection_->state, channel, delivery_tag, multiple ? 1 : 0);
        status != AMQP_STATUS_OK)
        throw status_error(*connection_, status,
                           on_channel("basic.ack " + std::to_string(delivery_tag), channel));
}

void AmqpSession::reject_on(std::uint16_t channel, std::uint64_t delivery_tag) {
    if (int status = amqp_basic_nack(connection_->state, channel, delivery_tag, 0, 0);
        status != AMQP_STATUS_OK)
        throw status_error(*connection_, status,
                           on_channel("basic.nack " + std::to_string(delivery_tag), channel));
}

void AmqpSession::give_back_and_close(std::uint16_t channel, const std::string& consumer_tag) {
    AmqpConnection& connection = *connection_;
    amqp_basic_cancel(connection.state, channel, as_bytes(consumer_tag));
    check_on(connection, channel, on_channel("basic.cancel", channel));
    // As give_back_unacked(): every unacked delivery back (tag 0, multiple), and a synchronous
    // method after it so that the close cannot overtake the acks and the nack.
    if (int status = amqp_basic_nack(connection.state, channel, 0, 1, 1); status != AMQP_STATUS_OK)
        throw status_error(connection, status, on_channel("basic.nack (requeue all)", channel));
    amqp_basic_qos(connection.state, channel, 0, 0, 0);
    check_on(connection, channel, on_channel("basic.qos", channel));
    close_channel(channel);
}

void AmqpSession::close_channel(std::uint16_t channel) {
    amqp_rpc_reply_t reply = amqp_channel_close(connection_->state, channel, AMQP_REPLY_SUCCESS);
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION)
        server_closed(*connection_, reply.reply, channel, on_channel("channel.close", channel),
                      CloseArrived::as_reply);
    check(*connection_, reply, on_channel("channel.close", channel));
}

bool AmqpSession::wait_readable(std::chrono::milliseconds timeout, int wake_fd) {
    AmqpConnection& connection = *connection_;
    if (amqp_frames_enqueued(connection.state) || amqp_data_in_buffer(connection.state))
        return true;
    pollfd fds[2] = {{amqp_get_sockfd(connection.state), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int ready = ::poll(fds, 2, static_cast<int>(timeout.count()));
    if (ready < 0 && errno != EINTR)
        throw AmqpError(AmqpError::Kind::connection,
                        "waiting for frames from " + connection.description + ": poll failed");
    return ready > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

}  // namespace rmq2pg
