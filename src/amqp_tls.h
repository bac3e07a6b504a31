// amqps:// for AmqpSession: rabbitmq-c's OpenSSL socket set up from amqp.tls, and the reasons
// OpenSSL knows but rabbitmq-c does not pass on (why a certificate failed, the peer's alert).
#pragma once

#include <amqp.h>

#include <string>

#include "amqp_url.h"

namespace rmq2pg {

// A TLS socket on `state`, verifying the broker unless amqp.tls turns it off. Throws
// AmqpError(refused) when a file of amqp.tls is unusable, naming the key.
amqp_socket_t* new_tls_socket(amqp_connection_state_t state, const AmqpUrl& url);

// Call before a handshake: forgets this thread's previous OpenSSL errors and verify problem.
void clear_tls_errors();

// What OpenSSL queued for this thread's last failed call ("tlsv13 alert certificate
// required"), or "" when it queued nothing. Clears the queue.
std::string openssl_reason();

// Why the broker's certificate was refused after the handshake failed with `status`
// (AMQP_STATUS_SSL_PEER_VERIFY_FAILED or _HOSTNAME_VERIFY_FAILED), and what to look at.
std::string tls_verify_failure(int status, const AmqpUrl& url);

}  // namespace rmq2pg
