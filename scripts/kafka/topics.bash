# scripts/kafka/topics.bash - Convutell's topics as name:partitions, sourced by
# scripts/stack (one broker: one replica each) and scripts/hosts (three brokers:
# three replicas each), so that both create the same ones.
# shellcheck disable=SC2034
TOPICS=(convutell.jobs:8 convutell.events:3 convutell.jobs.dlq:1 convutell.jobs.retry:3
        convutell.queries:3 convutell.replies:3)
