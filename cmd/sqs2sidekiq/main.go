// Command sqs2sidekiq moves SNS notifications arriving in SQS queues into Sidekiq: each
// message's topic picks a Sidekiq worker class and queue, the job is pushed to Redis in
// Sidekiq's wire format, and the SQS message is deleted only after Redis confirmed it.
//
//	sqs2sidekiq -config sqs2sidekiq.yaml
//
// SIGTERM or SIGINT shuts it down gracefully (stop receiving, finish the enqueues in flight,
// flush the deletes, exit 0); a second signal exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/redis/go-redis/v9"

	"github.com/sqsconsumer/sqsconsumer"
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
	slog.Info("sqs2sidekiq starting", "config", cfg.String())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-signals
		slog.Info("sqs2sidekiq: shutting down; a second signal exits at once")
		cancel()
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
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	b, err := NewBridge(cfg, client, rdb, sqsconsumer.WithLogger(slog.Default()))
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: cfg.Listen, Handler: b.Health(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("sqs2sidekiq: health server", "err", err)
		}
	}()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	}()
	return b.Run(ctx)
}
