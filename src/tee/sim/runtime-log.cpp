// The simulated CVM's runtime events: emitted through the same constructor the agent will use, so
// the simulator can never produce a log that the verifier refuses or that replays ambiguously.
#include "dstack/tee/sim.hpp"

namespace dstack::tee::sim {

Result<SimRuntimeLog> make_runtime_log(const std::vector<SimRuntimeEvent>& events, unsigned version) {
    SimRuntimeLog log;
    std::vector<Bytes> digests;
    for (const auto& emitted : events) {
        DSTACK_TRY(auto event, make_runtime_event(emitted.name, emitted.payload, version));
        digests.push_back(event.digest);
        log.events.push_back(std::move(event));
    }
    log.rtmr3 = replay_digests(digests);
    return log;
}

}  // namespace dstack::tee::sim
