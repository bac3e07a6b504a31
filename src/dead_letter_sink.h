// Where a worker sends poison messages. DeadLetterPublisher (dead_letter.h) implements it over
// AMQP with publisher confirms; unit tests of the worker hand a fake. Owned by one worker thread.
#pragma once

#include <string>

#include "delivery.h"

namespace rmq2pg {

class DeadLetterSink {
  public:
    virtual ~DeadLetterSink() = default;
    // Returns once the broker confirmed the dead letter. Throws AmqpError:
    // Kind::unpublishable when this message cannot be published at all, any other kind when the
    // broker or the connection failed (the caller retries).
    virtual void publish(const Delivery& delivery, const std::string& reason) = 0;
    // Drops the connection (after a broker failure elsewhere).
    virtual void reset() = 0;
};

}  // namespace rmq2pg
