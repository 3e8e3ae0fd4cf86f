//go:build linux

package media

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestEngineSelected checks the engine the suite runs on.
func TestEngineSelected(t *testing.T) {
	r := testRelay(t, nil)
	if testEngine != "" && r.Engine() != testEngine {
		t.Fatalf("engine %q, want %q", r.Engine(), testEngine)
	}
	t.Logf("engine %s", r.Engine())
}

// TestEngineEpoll runs the whole suite again on the epoll engine, the
// fallback where io_uring is unavailable (the main run uses io_uring when
// the kernel allows it).
func TestEngineEpoll(t *testing.T) {
	if testEngine != "" {
		t.Skip("already running on a forced engine")
	}
	cmd := exec.Command(os.Args[0], "-test.skip", "^TestEngineEpoll$|^TestInterop", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "MEDIA_TEST_ENGINE=epoll")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "engine epoll") {
		t.Fatalf("suite on the epoll engine: %v\n%s", err, out)
	}
}
