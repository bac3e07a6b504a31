// Which HTTP connections to cut so that a new client is always answered: those past their
// phase's deadline, and beyond the cap the one that has waited longest for a request. Pure
// policy handed ids and "now"; http_server.cpp applies it to sockets.
#pragma once

#include <chrono>
#include <cstddef>
#include <unordered_map>
#include <vector>

namespace rmq2pg {

// Not thread-safe: HttpServer holds one lock around every call.
class ConnectionGuard {
  public:
    using Clock = std::chrono::steady_clock;
    using Id = int;  // the socket: unique while the connection is open

    struct Limits {
        std::size_t max_open;             // connections not yet cut, at most
        std::chrono::milliseconds phase;  // to send a request, or to take its response
    };

    enum class Why {
        evicted,           // a new connection needed the slot
        request_deadline,  // opened, and no complete request headers within `phase`
        idle_deadline,     // kept alive after a response, no next request within `phase`
        response_deadline  // a response not taken by the client within `phase`
    };
    struct Cut {
        Id id;
        Why why;
    };

    explicit ConnectionGuard(Limits limits) : limits_(limits) {}

    // A connection was accepted. Returns the connections to cut so that at most max_open stay:
    // those waiting longest for a request first; never one inside a request, never this one.
    std::vector<Cut> opened(Id id, Clock::time_point now);
    // Its request headers are complete: the handler answers now.
    void request_started(Id id, Clock::time_point now);
    // Its response was sent (or the request ended): the connection waits for the next request.
    void request_finished(Id id, Clock::time_point now);
    void closed(Id id);
    // The connections past their phase's deadline, each returned once.
    std::vector<Cut> expired(Clock::time_point now);

    std::size_t open() const { return open_; }  // not cut

  private:
    enum class Phase { awaiting_first_request, in_request, awaiting_next_request };
    struct Connection {
        Phase phase;
        Clock::time_point since;  // when the phase began
        bool cut = false;
    };
    static Why why_expired(Phase phase);

    Limits limits_;
    std::unordered_map<Id, Connection> connections_;
    std::size_t open_ = 0;
};

}  // namespace rmq2pg
