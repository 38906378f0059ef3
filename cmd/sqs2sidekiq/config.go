package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
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
	// UnknownTopic is what happens to a message whose topic has no route: "retry" (default:
	// it stays, and a redrive policy dead-letters it) or "delete".
	UnknownTopic string `yaml:"unknown_topic"`
	Concurrency  int    `yaml:"concurrency"` // default 16
	// Timestamps: "milliseconds" (Sidekiq 8, the default) or "seconds" (Sidekiq 7 and earlier:
	// float seconds).
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
}

// Route is the Sidekiq job a topic's messages become.
type Route struct {
	Class string `yaml:"class"` // worker class; required
	Queue string `yaml:"queue"` // Sidekiq queue; default "default"
	Retry *bool  `yaml:"retry"` // Sidekiq's retry flag; default true
}

// LoadConfig reads and checks the file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(b)
}

// ParseConfig parses YAML: unknown fields and missing required fields are errors naming them.
func ParseConfig(b []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var errs []error
	need := func(ok bool, field string) {
		if !ok {
			errs = append(errs, fmt.Errorf("config: %s is required", field))
		}
	}
	need(len(c.Queues) > 0, "queues")
	need(c.Redis.URL != "", "redis.url")
	need(len(c.Routes) > 0, "routes")
	for topic, r := range c.Routes {
		need(r.Class != "", "routes."+topic+".class")
		if r.Queue == "" {
			r.Queue = "default"
			c.Routes[topic] = r
		}
	}
	if c.Credentials != nil {
		need(c.Credentials.AccessKeyID != "" && c.Credentials.SecretAccessKey != "", "credentials.access_key_id and credentials.secret_access_key")
	}
	switch c.UnknownTopic {
	case "":
		c.UnknownTopic = "retry"
	case "retry", "delete":
	default:
		errs = append(errs, fmt.Errorf("config: unknown_topic %q: want retry or delete", c.UnknownTopic))
	}
	switch c.Timestamps {
	case "":
		c.Timestamps = "milliseconds"
	case "milliseconds", "seconds":
	default:
		errs = append(errs, fmt.Errorf("config: timestamps %q: want milliseconds or seconds", c.Timestamps))
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	} else if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("config: concurrency %d: want >= 1", c.Concurrency))
	}
	switch {
	case c.VisibilityTimeout == 0:
		c.VisibilityTimeout = 30 * time.Second
	case c.VisibilityTimeout < time.Second || c.VisibilityTimeout > 12*time.Hour:
		errs = append(errs, fmt.Errorf("config: visibility_timeout %v: want 1s..12h", c.VisibilityTimeout))
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9090"
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

// String describes the config for logs, with every secret redacted.
func (c *Config) String() string {
	redis := c.Redis.URL
	if i := strings.Index(redis, "@"); i >= 0 {
		if j := strings.Index(redis, "://"); j >= 0 && j < i {
			redis = redis[:j+3] + "REDACTED" + redis[i:]
		}
	}
	creds := "AWS credential chain"
	if c.Credentials != nil {
		creds = "static (REDACTED)"
	}
	return fmt.Sprintf("queues=%v region=%q endpoint=%q credentials=%s redis=%s namespace=%q routes=%d unknown_topic=%s concurrency=%d timestamps=%s visibility_timeout=%v finish_receives=%v",
		c.Queues, c.Region, c.Endpoint, creds, redis, c.Redis.Namespace, len(c.Routes), c.UnknownTopic, c.Concurrency, c.Timestamps, c.VisibilityTimeout, c.FinishReceives)
}
