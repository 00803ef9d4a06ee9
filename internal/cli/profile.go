package cli

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile to path until stop is called (""
// profiles nothing): SLUIS_CPUPROFILE of `sluis serve` and `sluis
// connect`. The operator names the file; nothing is ever served over
// HTTP.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("SLUIS_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("SLUIS_CPUPROFILE: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeProfile writes the runtime profile name (allocs, block, mutex) to
// f and closes it; a failure is logged, the gateway is stopping anyway.
func writeProfile(log *slog.Logger, name string, f *os.File) {
	if name == "allocs" {
		runtime.GC() // the profile is as of the last collection
	}
	err := pprof.Lookup(name).WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Error("sluis: writing the "+name+" profile", "path", f.Name(), "err", err)
	}
}
