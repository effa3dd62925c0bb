package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines outlive them. gokrb5's service
// side, which the Negotiate tests use as the server, keeps one process-wide replay
// cache with a cleaner goroutine; the client side starts none that outlive a call.
func TestMain(m *testing.M) {
	// The cleaner's name depends on inlining, which -race changes.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.VerifyAPREQ.GetReplayCache.func1.1"),
		goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.GetReplayCache.func1.1"))
}
