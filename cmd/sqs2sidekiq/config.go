package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the daemon's YAML configuration.
type Config struct {
	Queues      []string         `yaml:"queues"`      // SQS queue URLs; required
	Region      string           `yaml:"region"`      // default: the AWS environment's
	Endpoint    string           `yaml:"endpoint"`    // an emulator's URL; default AWS
	Credentials *Credentials     `yaml:"credentials"` // default: the AWS credential chain
	Redis       RedisConfig      `yaml:"redis"`
	Routes      map[string]Route `yaml:"routes"` // SNS topic (name or full ARN) -> Sidekiq job; required
	// UnknownTopic is what happens to an SNS notification whose topic has no route: "retry"
	// (default: it stays, and a redrive policy dead-letters it) or "delete".
	UnknownTopic string `yaml:"unknown_topic"`
	// NonSNS is what happens to a body that is not an SNS notification (a subscription
	// switched to raw delivery, a message sent straight to the queue): "keep" (default: it is
	// not deleted, and a redrive policy dead-letters it) or "delete". Either way it is logged at
	// Warn, a line per minute with the count.
	NonSNS      string `yaml:"non_sns"`
	Concurrency int    `yaml:"concurrency"` // default 16
	// Timestamps is the format of created_at and enqueued_at, and it must match the Sidekiq
	// that reads the jobs: "seconds" (float seconds: Sidekiq 7 and earlier) or "milliseconds"
	// (integer milliseconds: Sidekiq 8). Required. At start the daemon compares it with the
	// Sidekiq processes registered in Redis and refuses a mismatch.
	Timestamps string `yaml:"timestamps"`
	Listen     string `yaml:"listen"` // health and metrics address; default 127.0.0.1:9090
	// VisibilityTimeout is asked on each receive and extended while a job is pushed (default
	// 30s; 1s to 12h).
	VisibilityTimeout time.Duration `yaml:"visibility_timeout"`
	// FinishReceives makes shutdown wait for the long poll in flight (up to 20 s) instead of
	// cancelling it; by default the daemon exits at once when idle, and messages SQS may have
	// handed to the cancelled receive come back after the visibility timeout.
	FinishReceives bool `yaml:"finish_receives"`
}

// Credentials are static AWS credentials. They are never logged.
type Credentials struct {
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
}

// RedisConfig says where Sidekiq's Redis is.
type RedisConfig struct {
	URL       string `yaml:"url"`       // redis://[user:password@]host:port/db; required
	Namespace string `yaml:"namespace"` // key prefix, as redis-namespace writes it ("ns:queue:default")
	// Timeout bounds one push (and a readiness or breaker ping): a Redis that hangs fails the
	// push after it, which counts toward the breaker. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// Route is the Sidekiq job a topic's messages become.
type Route struct {
	Class string `yaml:"class"` // worker class; required
	Queue string `yaml:"queue"` // Sidekiq queue; default "default"
	// Retry is the job's "retry" field: true, false or a number of retries. Left out, the job
	// has no "retry" key and Sidekiq applies the worker's own sidekiq_options.
	Retry *Retry `yaml:"retry"`
	// Account and Region, when set, limit a route keyed by topic name to topics of that AWS
	// account and region (a notification from another account's topic of the same name is an
	// unknown topic). A route keyed by a full ARN is already that precise.
	Account string `yaml:"account"`
	Region  string `yaml:"region"`
	// Payload is how the SNS Message becomes the job's single argument: "json" (default: a
	// Message that is valid JSON goes into args exactly as published, numbers and key order as
	// written; any other Message as a string) or "string" (always the Message as a string).
	Payload string `yaml:"payload"`
}

// Retry is a route's retry setting: a bool, or a number of retries (0 or more).
type Retry struct {
	Bool  *bool
	Count int
}

// UnmarshalYAML accepts true, false or a non-negative integer.
func (r *Retry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!bool":
			var v bool
			if err := n.Decode(&v); err != nil {
				return err
			}
			r.Bool = &v
			return nil
		case "!!int":
			v, err := strconv.Atoi(n.Value)
			if err == nil && v >= 0 {
				r.Count = v
				return nil
			}
		}
	}
	return fmt.Errorf("line %d: retry %q: want true, false or a number of retries (0 or more)", n.Line, n.Value)
}

// value is the job's "retry" field.
func (r *Retry) value() any {
	if r.Bool != nil {
		return *r.Bool
	}
	return r.Count
}

// LoadConfig reads and checks the file at path; its errors name the file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(b, "config "+path)
}

// ParseConfig parses YAML: unknown fields and missing required fields are errors naming them.
func ParseConfig(b []byte) (*Config, error) { return parseConfig(b, "config") }

func parseConfig(b []byte, where string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where}, args...)...))
	}
	need := func(ok bool, field string) {
		if !ok {
			bad("%s is required", field)
		}
	}
	need(len(c.Queues) > 0, "queues")
	need(c.Redis.URL != "", "redis.url")
	need(len(c.Routes) > 0, "routes")
	for topic, r := range c.Routes {
		need(r.Class != "", "routes."+topic+".class")
		if r.Queue == "" {
			r.Queue = "default"
		}
		switch r.Payload {
		case "":
			r.Payload = "json"
		case "json", "string":
		default:
			bad("routes.%s.payload %q: want json or string", topic, r.Payload)
		}
		if strings.HasPrefix(topic, "arn:") {
			if r.Account != "" || r.Region != "" {
				bad("routes.%s: account and region limit a route keyed by topic name; this key is a full ARN", topic)
			}
			if p := strings.Split(topic, ":"); len(p) != 6 || p[2] != "sns" {
				bad("routes.%s: not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", topic)
			}
		} else if strings.Contains(topic, ":") {
			bad("routes.%s: a topic name has no ':'; use the full ARN or the name", topic)
		}
		c.Routes[topic] = r
	}
	if c.Credentials != nil {
		need(c.Credentials.AccessKeyID != "" && c.Credentials.SecretAccessKey != "", "credentials.access_key_id and credentials.secret_access_key")
	}
	switch c.UnknownTopic {
	case "":
		c.UnknownTopic = "retry"
	case "retry", "delete":
	default:
		bad("unknown_topic %q: want retry or delete", c.UnknownTopic)
	}
	switch c.NonSNS {
	case "":
		c.NonSNS = "keep"
	case "keep", "delete":
	default:
		bad("non_sns %q: want keep or delete", c.NonSNS)
	}
	switch c.Timestamps {
	case "milliseconds", "seconds":
	case "":
		bad(`timestamps is required: "seconds" for Sidekiq 7 and earlier (float seconds), "milliseconds" for Sidekiq 8 (integer milliseconds)`)
	default:
		bad(`timestamps %q: want "seconds" (Sidekiq 7 and earlier) or "milliseconds" (Sidekiq 8)`, c.Timestamps)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	} else if c.Concurrency < 0 {
		bad("concurrency %d: want >= 1", c.Concurrency)
	}
	switch {
	case c.VisibilityTimeout == 0:
		c.VisibilityTimeout = 30 * time.Second
	case c.VisibilityTimeout < time.Second || c.VisibilityTimeout > 12*time.Hour:
		bad("visibility_timeout %v: want 1s..12h", c.VisibilityTimeout)
	}
	switch {
	case c.Redis.Timeout == 0:
		c.Redis.Timeout = 5 * time.Second
	case c.Redis.Timeout < 10*time.Millisecond || c.Redis.Timeout > time.Minute:
		bad("redis.timeout %v: want 10ms..1m", c.Redis.Timeout)
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9090"
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

// RedactedRedisURL is the Redis URL with any password replaced, for logs and errors.
func (c *Config) RedactedRedisURL() string {
	u := c.Redis.URL
	if i := strings.LastIndex(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			u = u[:j+3] + "REDACTED" + u[i:]
		}
	}
	return u
}

// String describes the config for logs, with every secret redacted.
func (c *Config) String() string {
	creds := "AWS credential chain"
	if c.Credentials != nil {
		creds = "static (REDACTED)"
	}
	return fmt.Sprintf("queues=%v region=%q endpoint=%q credentials=%s redis=%s namespace=%q redis_timeout=%v routes=%d unknown_topic=%s non_sns=%s concurrency=%d timestamps=%s visibility_timeout=%v finish_receives=%v",
		c.Queues, c.Region, c.Endpoint, creds, c.RedactedRedisURL(), c.Redis.Namespace, c.Redis.Timeout, len(c.Routes), c.UnknownTopic, c.NonSNS, c.Concurrency, c.Timestamps, c.VisibilityTimeout, c.FinishReceives)
}
