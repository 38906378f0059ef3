// Command sqs2sidekiq moves SNS notifications arriving in SQS queues into Sidekiq: each
// message's topic picks a Sidekiq worker class and queue, the job is pushed to Redis in
// Sidekiq's wire format, and the SQS message is deleted only after Redis confirmed it.
//
//	sqs2sidekiq -config sqs2sidekiq.yaml
//
// SIGTERM or SIGINT shuts it down gracefully (stop receiving, finish the enqueues in flight,
// flush the deletes, log what it did, exit 0); a second signal exits at once. A config error,
// a Redis that does not answer at start, timestamps that do not match the Sidekiq registered
// in Redis, or a health address that cannot be bound exit 1 before anything is received.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/redis/go-redis/v9"
)

func main() {
	path := flag.String("config", "sqs2sidekiq.yaml", "configuration file")
	flag.Parse()
	if err := run(*path); err != nil {
		slog.Error("sqs2sidekiq", "err", err)
		os.Exit(1)
	}
}

func run(path string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	logger := slog.Default()
	logger.Info("sqs2sidekiq starting", "config", cfg.String())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		<-signals
		logger.Info("sqs2sidekiq: shutting down; a second signal exits at once")
		cancel(nil)
		<-signals
		os.Exit(1)
	}()

	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, func(o *awsconfig.LoadOptions) error {
		if cfg.Region != "" {
			o.Region = cfg.Region
		}
		if c := cfg.Credentials; c != nil {
			o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Source: "sqs2sidekiq config"}, nil
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	client := sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	opt, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		return errors.New("redis.url does not parse") // the URL may hold a password: not echoed
	}
	// Deadlines from the ctx reach the connection: a push or a ping on a Redis that hangs
	// fails at redis.timeout instead of waiting on the socket.
	opt.ContextTimeoutEnabled = true
	// go-redis logs every failed dial; the bridge logs an outage once (its start and its end),
	// so the client's own lines go to Debug.
	redis.SetLogger(redisLog{logger})
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	b, err := NewBridge(cfg, client, rdb, logger)
	if err != nil {
		return err
	}
	// Bind before anything is received: a daemon whose health and metrics cannot be served
	// does not start (it would run blind).
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen (health and metrics): %w", err)
	}
	srv := &http.Server{Handler: b.Health(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("health server: %w", err)) // stops the bridge; run returns it
		}
	}()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	}()
	if err := b.Run(ctx); err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// redisLog passes go-redis's internal log lines to slog at Debug.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}
