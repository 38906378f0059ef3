package sqsconsumer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
)

// setupPatience is how long receives must have failed in a row, with no receive ever having
// succeeded, before a failure that says SQS cannot be reached as configured (credentials that
// cannot be had, an endpoint that refuses connections or has no address, a certificate that
// does not verify, an HTTP client that times out long polls) ends Run. A network that comes up
// a few seconds after the process (a sidecar proxy, a VPN) gets that long; a wrong setting
// fails the start instead of being retried for ever.
var setupPatience = 10 * time.Second

// failure is how a failed receive is treated.
type failure int

const (
	// transient: retried after a backoff for as long as it lasts (throttling, server errors,
	// a network that failed after receives had succeeded).
	transient failure = iota
	// fatal: retrying cannot help (the queue does not exist, access is denied, the endpoint
	// cannot be resolved from the configuration): Run ends after fatalTries in a row.
	fatalFailure
	// setup: SQS cannot be reached as configured; fatal like the above while no receive has
	// ever succeeded and the failures have lasted setupPatience, transient afterwards.
	setupFailure
	// misconfigured: the configuration cannot work (an HTTP client that times out long polls):
	// Run ends at once.
	misconfigured
)

// classify says how a failed receive is treated, with a hint for the log and Run's error that
// says what to check ("" when the error speaks for itself). recvCtx is the receive's own ctx.
func classify(err error, recvCtx context.Context) (failure, string) {
	if fatal(err) {
		return fatalFailure, ""
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return transient, "" // SQS answered: the setup reaches it
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "get identity:"):
		return setupFailure, "no credentials could be had for the request: set AWS credentials (environment, shared config, an IAM role) or the client's Credentials"
	case strings.Contains(msg, "failed to resolve service endpoint") || strings.Contains(msg, "failed to bind endpoint params"):
		// The SDK failed the call before sending it, from its configuration alone ("Missing
		// Region", an invalid region): the same configuration fails the same way every time.
		return fatalFailure, "no endpoint could be resolved from the client's configuration: set the AWS region (AWS_REGION) or a valid endpoint"
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() && recvCtx.Err() == nil && strings.Contains(msg, "Client.Timeout") {
		// The HTTP client's own timeout ran out before the receive's deadline (the wait time
		// plus 5 s): it is shorter than a long poll, and every empty poll will hit it.
		return misconfigured, "the HTTP client timed out a long poll: its timeout must be at least the wait time (WithWaitTime, default 20s) plus 5s, or SQS hands messages to requests that were given up and they stay invisible for the visibility timeout"
	}
	var dns *net.DNSError
	var nop *net.OpError
	switch {
	case errors.As(err, &dns):
		return setupFailure, "the endpoint's host name does not resolve: check the region and any custom endpoint (AWS_ENDPOINT_URL, BaseEndpoint)"
	case errors.As(err, &nop) && nop.Op == "dial":
		return setupFailure, "no connection could be made to the endpoint: check the endpoint URL, the network and any proxy"
	}
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return setupFailure, "the endpoint's TLS certificate does not verify: check the endpoint URL and the system's CA certificates"
	}
	return transient, ""
}

// clientOptions is what *sqs.Client has that lets New check its configuration.
type clientOptions interface{ Options() sqs.Options }

// checkClient refuses a client whose configuration New can see to be wrong for consuming: no
// region and no endpoint (every request would fail), or an HTTP client that gives up on a long
// poll before SQS answers it.
func checkClient(client Client, wait time.Duration) error {
	c, ok := client.(clientOptions)
	if !ok {
		return nil
	}
	o := c.Options()
	if o.Region == "" && o.BaseEndpoint == nil {
		return invalid("client", "the SQS client has no region: set AWS_REGION, or config.WithRegion when loading the configuration")
	}
	return checkHTTPTimeout(o.HTTPClient, wait)
}

// httpTimeout returns the timeout of an HTTP client that has one the consumer can see: an
// *http.Client's Timeout, or the SDK's BuildableClient's GetTimeout. 0: none, or unseen.
func httpTimeout(c any) time.Duration {
	switch h := c.(type) {
	case *http.Client:
		if h != nil {
			return h.Timeout
		}
	case interface{ GetTimeout() time.Duration }:
		return h.GetTimeout()
	}
	return 0
}

// checkHTTPTimeout refuses an HTTP client timeout that a long poll of wait would run into.
func checkHTTPTimeout(c any, wait time.Duration) error {
	t := httpTimeout(c)
	if t <= 0 || wait == 0 || t >= wait+receiveGrace {
		return nil
	}
	return invalid("client", "the SQS client's HTTP client times out after %v, before a long poll of %v (WithWaitTime) can return: "+
		"give it a timeout of at least %v (or none), or lower WithWaitTime; otherwise SQS hands messages to requests that were given up and they stay invisible for the visibility timeout",
		t, wait, wait+receiveGrace)
}

// hinted wraps err with what to check, when there is a hint.
func hinted(err error, hint string) error {
	if hint == "" {
		return err
	}
	return fmt.Errorf("%s: %w", hint, err)
}
