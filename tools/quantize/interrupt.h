// SIGINT and SIGTERM ask the running job to stop at its next chunk: it then removes its temporary files and the
// command exits 130. A second signal while stopping has the default effect.
#pragma once

#include <atomic>

namespace quant::cli {

// Installs the handlers and returns the flag they set, for a job's `cancel` option.
const std::atomic<bool>* stop_on_interrupt();

}  // namespace quant::cli
