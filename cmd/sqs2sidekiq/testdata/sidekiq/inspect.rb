# frozen_string_literal: true

# Prints, as one JSON document on stdout, the state of Sidekiq as Sidekiq's own API
# (sidekiq/api) reads it: the queues and their jobs, the retry set, the dead set and the
# processes. Same environment as app.rb: REDIS_URL and optional SIDEKIQ_NAMESPACE.
#
#   ruby inspect.rb

require "json"
require "logger"
require "sidekiq"
require "sidekiq/api"

Redis.silence_deprecations = true

redis = {url: ENV.fetch("REDIS_URL"), size: 2}
ns = ENV["SIDEKIQ_NAMESPACE"].to_s
redis[:namespace] = ns unless ns.empty?
Sidekiq.logger.level = Logger::WARN
Sidekiq.configure_client { |config| config.redis = redis }

# time_f is what Sidekiq's API makes of a timestamp, as float seconds; nil when the API
# cannot read it (Time.at raises on a string, for example).
def time_f
  yield&.to_f
rescue
  nil
end

def record(job)
  {
    "jid" => job.jid,
    "klass" => job.klass,
    "queue" => job.queue,
    "args" => job.args,
    "retry" => job["retry"],
    "has_retry" => job.item.key?("retry"),
    "retry_count" => job["retry_count"],
    "error_class" => job["error_class"],
    "error_message" => job["error_message"],
    # JobRecord#enqueued_at is Time.at(job["enqueued_at"]): the value read as seconds.
    "enqueued_at" => time_f { job.enqueued_at },
    "created_at" => time_f { job.created_at },
    "enqueued_at_raw" => job["enqueued_at"],
    "created_at_raw" => job["created_at"],
    "latency" => (begin
      job.latency
    rescue
      nil
    end)
  }
end

queues = Sidekiq::Queue.all.map { |q|
  {
    "name" => q.name,
    "size" => q.size,
    "latency" => (begin
      q.latency
    rescue
      nil
    end),
    "paused" => q.paused?,
    "jobs" => q.map { |job| record(job) }
  }
}

sorted = lambda { |set|
  set.map { |entry| record(entry).merge("at" => time_f { entry.at }, "score" => entry.score) }
}

processes = Sidekiq::ProcessSet.new.map { |p|
  p.instance_variable_get(:@attribs)
}

stats = Sidekiq::Stats.new
puts JSON.generate({
  "now" => Time.now.to_f,
  "queues" => queues,
  "retries" => sorted.call(Sidekiq::RetrySet.new),
  "retry_size" => Sidekiq::RetrySet.new.size,
  "scheduled" => sorted.call(Sidekiq::ScheduledSet.new),
  "dead" => sorted.call(Sidekiq::DeadSet.new),
  "dead_size" => Sidekiq::DeadSet.new.size,
  "processes" => processes,
  "stats" => {
    "processed" => stats.processed,
    "failed" => stats.failed,
    "enqueued" => stats.enqueued,
    "retry_size" => stats.retry_size,
    "dead_size" => stats.dead_size,
    "scheduled_size" => stats.scheduled_size
  }
})
