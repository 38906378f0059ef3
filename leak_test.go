package sqsconsumer_test

import "go.uber.org/goleak"

// commonGoleakIgnores lists goroutines that are not the library's: the HTTP transport's idle
// connections left by the emulator tests' SDK clients.
func commonGoleakIgnores() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	}
}
