"""hadoop-event-collector: Hadoop cluster activity as versioned JSON events on Kafka."""

__version__ = "0.1.0"
