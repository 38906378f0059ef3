# frozen_string_literal: true

# A small Sidekiq 6 app for sqs2sidekiq's tests (sidekiq_harness_test.go):
#
#   sidekiq -r ./app.rb -q default -q critical
#
# Environment:
#   REDIS_URL            redis://127.0.0.1:6379/0 (required)
#   SIDEKIQ_NAMESPACE    optional; keys are then "<namespace>:queue:default" etc. (redis-namespace)
#   RESULTS_FILE         file each perform appends one JSON line to (required)
#   ERRORS_FILE          optional file that gets one JSON line per failed job, written once
#                        Sidekiq has handled the failure (retry set written, or job dropped)
#   SIDEKIQ_CONCURRENCY  worker threads (default 5)
#
# Records go to a file, not to Redis, so that they survive a Redis restart in outage tests.

require "json"
require "logger"
require "sidekiq"

# redis-rb 4.8 warns about redis-namespace's positional BRPOP timeout every 2 s per thread.
Redis.silence_deprecations = true

REDIS_CONFIG = {url: ENV.fetch("REDIS_URL")}.tap { |c|
  ns = ENV["SIDEKIQ_NAMESPACE"].to_s
  c[:namespace] = ns unless ns.empty?
}.freeze
RESULTS_FILE = ENV.fetch("RESULTS_FILE")
ERRORS_FILE = ENV["ERRORS_FILE"].to_s

def append_line(path, hash)
  line = JSON.generate(hash) + "\n"
  File.open(path, "a") do |f|
    f.flock(File::LOCK_EX)
    f.write(line)
    f.flush
  end
end

# CaptureJob hands the job hash, exactly as Sidekiq parsed it from Redis, to the worker's
# thread: perform only receives the args.
class CaptureJob
  def call(_worker, job, _queue)
    Thread.current[:sqs2sidekiq_job] = job
    yield
  ensure
    Thread.current[:sqs2sidekiq_job] = nil
  end
end

Sidekiq.configure_server do |config|
  config.redis = REDIS_CONFIG
  config.options[:concurrency] = Integer(ENV.fetch("SIDEKIQ_CONCURRENCY", "5"))
  config.logger.level = Logger::WARN
  config.server_middleware do |chain|
    chain.add(CaptureJob)
  end
  unless ERRORS_FILE.empty?
    # Sidekiq calls error handlers for a failed job after JobRetry has dealt with it, so a
    # line here means the retry set (or nothing, for retry: false) already has its answer.
    config.error_handlers << proc { |ex, ctx|
      job = ctx[:job]
      next unless job.is_a?(Hash)
      append_line(ERRORS_FILE, {
        "class" => job["class"],
        "jid" => job["jid"],
        "has_retry" => job.key?("retry"),
        "retry" => job["retry"],
        "error_class" => ex.class.name,
        "error_message" => ex.message,
        "context" => ctx[:context]
      })
    }
  end
end

Sidekiq.configure_client do |config|
  config.redis = REDIS_CONFIG
end

# Keys Sidekiq itself puts in a job; any other top-level key is reported under "extra".
SIDEKIQ_KEYS = %w[class args queue jid retry created_at enqueued_at retry_count failed_at retried_at
  error_message error_class error_backtrace backtrace at wrapped].freeze

module Recording
  def record(args)
    job = Thread.current[:sqs2sidekiq_job] || {}
    now = Time.now.to_f
    enq = job["enqueued_at"]
    append_line(RESULTS_FILE, {
      "class" => self.class.name,
      "jid" => job["jid"],
      "queue" => job["queue"],
      "args" => args,
      "has_retry" => job.key?("retry"),
      "retry" => job["retry"],
      "retry_count" => job["retry_count"],
      "enqueued_at" => enq,
      "created_at" => job["created_at"],
      # What Sidekiq's API would report: now minus enqueued_at read as seconds.
      "latency" => enq.is_a?(Numeric) ? now - enq : nil,
      "extra" => job.reject { |k, _| SIDEKIQ_KEYS.include?(k) },
      "performed_at" => now,
      "pid" => ::Process.pid
    })
  end
end

class RecordWorker
  include Sidekiq::Worker
  include Recording

  def perform(*args)
    record(args)
  end
end

class OrderWorker < RecordWorker; end

class UserWorker < RecordWorker; end

class TestFailure < StandardError; end

class FailingWorker
  include Sidekiq::Worker
  include Recording

  def perform(*args)
    record(args)
    raise TestFailure, "#{self.class.name} always fails"
  end
end

class NoRetryWorker < FailingWorker
  sidekiq_options retry: false
end

class FiveRetryWorker < FailingWorker
  sidekiq_options retry: 5
end
