package sqsconsumer_test

import "go.uber.org/goleak"

// commonGoleakIgnores lists goroutines that are not the library's: the HTTP transport's idle
// connections of the emulator tests.
func commonGoleakIgnores() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	}
}
