// The observability endpoints (http.listen): /metrics (Prometheus text), /healthz, /readyz,
// /api/status (JSON) and / (the status page). Serves on threads of its own and only reads
// atomics and snapshots: it never touches a worker's connections. Bounded: every connection has
// deadlines and their number a cap (http_connection_guard.h). The only file that includes
// libmicrohttpd.
#pragma once

#include <memory>
#include <string>

#include "status_sampler.h"
#include "supervisor.h"

namespace rmq2pg {

class HttpServer {
  public:
    HttpServer(const Supervisor& supervisor, const StatusSampler& sampler, std::string host,
               int port);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds host:port (throws std::runtime_error saying why it could not) and starts serving.
    void start();
    // From now on /readyz answers 503 "shutting down"; everything else keeps answering while the
    // workers drain, so the last counters can still be scraped.
    void note_stopping();
    void stop();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rmq2pg
