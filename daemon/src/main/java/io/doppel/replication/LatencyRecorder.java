package io.doppel.replication;

/**
 * Where a volume's latencies go: the node's meters implement it ({@code io.doppel.admin.Metrics}), so the
 * write path and the link only call a method, and know nothing of the metrics library.
 */
public interface LatencyRecorder
{
    LatencyRecorder NONE = new LatencyRecorder()
    {
        @Override
        public void ack(final long nanos)
        {
        }

        @Override
        public void nbd(final int command, final long nanos)
        {
        }

        @Override
        public void lag(final long nanos)
        {
        }
    };

    /** A frame was acknowledged by the standby {@code nanos} after it was sent. */
    void ack(long nanos);

    /** An NBD request of {@code command} (its NBD_CMD code) was answered after {@code nanos}. */
    void nbd(int command, long nanos);

    /** A write reached the standby {@code nanos} after it was made (replication lag). */
    void lag(long nanos);
}
