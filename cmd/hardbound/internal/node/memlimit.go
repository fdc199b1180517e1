package node

import (
	"log/slog"
	"runtime/debug"
)

// ApplyMemoryLimit sets the runtime's soft memory limit from
// memory_limit. It is process-wide, so only the serve command calls it,
// not Start (tests run many nodes in one process). Without memory_limit
// the runtime keeps its own setting (gomemlimit is $GOMEMLIMIT, or none).
func ApplyMemoryLimit(cfg *Config, gomemlimit string, log *slog.Logger) {
	limit := cfg.MemoryLimitBytes()
	if limit == 0 {
		if gomemlimit != "" {
			log.Info("memory limit from GOMEMLIMIT", "bytes", debug.SetMemoryLimit(-1))
		}
		return
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit set", "memory_limit", cfg.MemoryLimit, "bytes", limit, "overrides_GOMEMLIMIT", gomemlimit != "")
}
