"""List hygiene: per-recipient bounce history, graduation to a suppression list.

``hygiene.core`` holds the rule and the per-recipient state (plain Python, event-time based,
no Kafka); ``hygiene.observe`` turns classified events into the compact observations the
ingest sends to the recipients topic; ``hygiene.records`` shapes the suppression records
and their exports. The worker (``streams.recipients``) and ``replay --suppressions`` call
the same code.
"""
