// Names of the worker states; see worker_state.h.
#include "worker_state.h"

namespace rmq2pg {

const char* to_string(WorkerState state) {
    switch (state) {
        case WorkerState::starting:
            return "starting";
        case WorkerState::connecting:
            return "connecting";
        case WorkerState::consuming:
            return "consuming";
        case WorkerState::writing:
            return "writing";
        case WorkerState::backing_off:
            return "backing_off";
        case WorkerState::paused:
            return "paused";
        case WorkerState::stopped:
            return "stopped";
        case WorkerState::standby:
            return "standby";
    }
    return "?";
}

}  // namespace rmq2pg
