package io.doppel.nbd;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * What an NBD client sees of a volume: the primary's read-write write path (every write is marked
 * dirty and replicated) or the standby's read-only copy.
 */
public interface NbdExport
{
    String name();

    long size();

    boolean readOnly();

    void read(long offset, ByteBuffer dst);

    /** Writes; returns a token for {@link #whenDone}. */
    long write(long offset, ByteBuffer src);

    /** Writes zeros ({@code mayTrim}: the range may be deallocated); returns a token for {@link #whenDone}. */
    long writeZeroes(long offset, long length, boolean mayTrim);

    /**
     * Runs {@code reply} when the write {@code token} may be acknowledged at the volume's level; with
     * {@code durable} (FUA), only once it is on stable storage wherever the level requires. Never waits
     * forever: a peer that cannot answer releases the reply (degraded).
     */
    void whenDone(long token, boolean durable, Runnable reply);

    /** Runs {@code reply} once every write acknowledged so far is on stable storage as the level requires. */
    void flush(Runnable reply);

    /** True when the range reads as zeros (for base:allocation). */
    boolean isZero(long offset, long length);

    /** NBD command names by code (NBD_CMD_READ = 0 to NBD_CMD_BLOCK_STATUS = 7), as meters name them. */
    List<String> COMMANDS = List.of("read", "write", "disc", "flush", "trim", "cache", "write_zeroes", "block_status");

    /** A request of NBD command {@code command} was answered successfully {@code nanos} after it arrived. */
    default void served(final int command, final long nanos)
    {
    }

    /** A write or flush of the export's image failed (already answered with an error): for status and metrics. */
    default void diskFault(final io.doppel.storage.DiskWriteException e)
    {
    }
}
