package io.doppel.twoway;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The decision for one incoming block version of a two-way volume, made identically on both nodes:
 * a version that has seen the local one is applied, one the local version has seen is ignored, and of
 * two concurrent versions the one with the later {@link HybridClock} stamp wins; the loser goes to the
 * {@link ConflictLog} (before it is overwritten, when it is the local one). Either way the block's vector
 * becomes the merge of both, so the two nodes end with the same bytes, vector and stamp.
 *
 * <p>Not thread-safe: one per link apply thread; the caller holds the block.
 */
public final class BlockResolver
{
    /** What {@link #resolve} decided. */
    public enum Outcome
    {
        /** Write the incoming bytes. */
        APPLY,
        /** Keep the local bytes. */
        KEEP,
        /** A conflict the incoming version won: write it (the local bytes are logged). */
        CONFLICT_APPLY,
        /** A conflict the local version won: keep it (the incoming bytes are logged). */
        CONFLICT_KEEP
    }

    private final VersionVectorFile versions;
    private final ConflictLog conflicts;
    private final HybridClock clock;
    private final int[] local;
    private final int[] merged;
    private long conflictCount;

    public BlockResolver(final VersionVectorFile versions, final ConflictLog conflicts, final HybridClock clock)
    {
        this.versions = versions;
        this.conflicts = conflicts;
        this.clock = clock;
        this.local = new int[versions.slots()];
        this.merged = new int[versions.slots()];
    }

    /**
     * Decides about the incoming version ({@code vector}, {@code stamp}, bytes {@code incoming}) of block
     * {@code block} at byte {@code offset}, whose local bytes {@code localBytes} supplies when a conflict
     * must log them. Updates the block's vector and stamp (the caller then writes the bytes for APPLY and
     * CONFLICT_APPLY).
     */
    public Outcome resolve(final long block, final long offset, final int[] vector, final long stamp,
        final ByteBuffer incoming, final LocalBytes localBytes) throws IOException
    {
        clock.observe(stamp);
        final long localStamp = versions.read(block, local);
        switch (VersionOrder.of(local, vector))
        {
            case EQUAL:
            case OLDER:
                return Outcome.KEEP;
            case NEWER:
                versions.write(block, vector, stamp);
                return Outcome.APPLY;
            default:
                System.arraycopy(local, 0, merged, 0, local.length);
                VersionOrder.merge(merged, vector);
                if (localBytes.read(offset, incoming.remaining()).equals(incoming))
                {
                    // The same bytes on both sides (two copies of one image, both seeded): nothing is lost, so
                    // no conflict; both sides still end with the same merged vector and stamp.
                    versions.write(block, merged, VersionOrder.incomingWins(localStamp, stamp) ? stamp : localStamp);
                    return Outcome.KEEP;
                }
                conflictCount++;
                if (VersionOrder.incomingWins(localStamp, stamp))
                {
                    conflicts.append(offset, stamp, localStamp, vector, local, localBytes.read(offset, incoming.remaining()));
                    versions.write(block, merged, stamp);
                    return Outcome.CONFLICT_APPLY;
                }
                conflicts.append(offset, localStamp, stamp, local, vector, incoming);
                versions.write(block, merged, localStamp);
                return Outcome.CONFLICT_KEEP;
        }
    }

    /** Conflicts decided by this resolver. */
    public long conflicts()
    {
        return conflictCount;
    }

    /** Reads the local bytes of a block (for the conflict log). */
    @FunctionalInterface
    public interface LocalBytes
    {
        ByteBuffer read(long offset, int length);
    }
}
