"""The domain core that reads delivery events: input adapters, reply classification, ISP
resolution. Plain Python: nothing here knows Faust or Kafka."""
