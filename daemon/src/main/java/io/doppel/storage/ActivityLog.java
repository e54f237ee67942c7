package io.doppel.storage;

import java.nio.MappedByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * The extents (4 MiB) of the volume that may hold writes the standby does not have yet, recorded
 * durably <em>before</em> the first write to a cold extent, as DRBD's activity log does.
 *
 * <p>Why: the dirty map lives in a shared mapping; a killed process leaves it exact in the page cache,
 * but a machine that loses power loses whatever the kernel had not written back. After such a crash,
 * the blocks to look at again are the persisted dirty map plus every extent listed here — never the
 * whole volume. An extent leaves the log (cools) lazily, only when its slot is needed and the standby
 * has acknowledged every write to it; if none qualifies, the caller marks the oldest extent dirty and
 * forces the dirty map before the slot is reused.
 *
 * <p>Slot layout (16 bytes, little-endian): {@code extent+1 u64 | crc32c(slot index, extent+1) u32 |
 * reserved u32}; 0 is an empty slot. One slot write and one page force per newly hot extent.
 * Not thread-safe: the write path calls it under its lock.
 */
public final class ActivityLog
{
    /** What the caller does when an extent must leave the log before the standby acknowledged it. */
    public interface Eviction
    {
        /** Make every block of {@code extent} dirty and force the dirty map: it is about to be forgotten here. */
        void forget(long extent);
    }

    private final MappedByteBuffer map;
    private final int offset;
    private final int slots;
    private final int extentShift;
    private final long[] extents;
    private final long[] lastLsn;
    private final long[] lastUse;
    private long[] recovered;
    private boolean damaged;
    private final CRC32C crc = new CRC32C();
    private long clock;
    private long transactions;

    ActivityLog(final MappedByteBuffer map, final int offset, final int slots, final int extentShift, final Path path)
    {
        this.map = map;
        this.offset = offset;
        this.slots = slots;
        this.extentShift = extentShift;
        this.extents = new long[slots];
        this.lastLsn = new long[slots];
        this.lastUse = new long[slots];
        final long[] found = new long[slots];
        int n = 0;
        boolean bad = false;
        for (int i = 0; i < slots; i++)
        {
            final long stored = map.getLong(offset + i * MetadataFile.AL_SLOT_BYTES);
            final int check = map.getInt(offset + i * MetadataFile.AL_SLOT_BYTES + 8);
            if (stored == 0 && check == 0)
            {
                continue;
            }
            if (check != checksum(i, stored))
            {
                bad = true; // a torn slot write: this slot's extent is unknown
                continue;
            }
            extents[i] = stored;
            lastLsn[i] = Long.MAX_VALUE; // protected until the recovery resync says otherwise
            found[n++] = stored - 1;
        }
        this.recovered = Arrays.copyOf(found, n);
        this.damaged = bad;
    }

    /** Extent size in bytes. */
    public long extentBytes()
    {
        return 1L << extentShift;
    }

    /** The extents listed when the file was opened (after a crash: to look at again). */
    public long[] recoveredExtents()
    {
        return recovered.clone();
    }

    /** Whether a slot could not be read back (torn write): nothing short of a full compare is safe then. */
    public boolean damaged()
    {
        return damaged;
    }

    /** Slot writes (each forced to disk) so far: a newly hot extent costs one. */
    public long transactions()
    {
        return transactions;
    }

    /** Extents currently listed. */
    public int hotExtents()
    {
        int n = 0;
        for (final long e : extents)
        {
            n += e != 0 ? 1 : 0;
        }
        return n;
    }

    /**
     * Makes every extent touched by {@code [offset, offset+length)} hot before the write that carries
     * {@code lsn}; an extent may cool once the standby holds every write up to {@code safeLsn}.
     */
    public void beforeWrite(final long offset, final long length, final long lsn, final long safeLsn,
        final Eviction eviction)
    {
        final long first = offset >>> extentShift;
        final long last = (offset + Math.max(length, 1) - 1) >>> extentShift;
        for (long extent = first; extent <= last; extent++)
        {
            activate(extent, lsn, safeLsn, eviction);
        }
    }

    private void activate(final long extent, final long lsn, final long safeLsn, final Eviction eviction)
    {
        final long key = extent + 1;
        clock++;
        int free = -1;
        int coolest = -1;
        int oldest = -1;
        for (int i = 0; i < slots; i++)
        {
            final long e = extents[i];
            if (e == key)
            {
                lastUse[i] = clock;
                if (lastLsn[i] != Long.MAX_VALUE)
                {
                    lastLsn[i] = Math.max(lastLsn[i], lsn);
                }
                return;
            }
            if (e == 0)
            {
                if (free < 0)
                {
                    free = i;
                }
            }
            else
            {
                if (lastLsn[i] <= safeLsn && (coolest < 0 || lastUse[i] < lastUse[coolest]))
                {
                    coolest = i;
                }
                if (oldest < 0 || lastUse[i] < lastUse[oldest])
                {
                    oldest = i;
                }
            }
        }
        int slot = free >= 0 ? free : coolest;
        if (slot < 0)
        {
            slot = oldest;
            eviction.forget(extents[slot] - 1);
        }
        write(slot, key);
        extents[slot] = key;
        lastLsn[slot] = lsn;
        lastUse[slot] = clock;
    }

    /** The recovery resync covered the recovered extents: they may cool like any other. */
    public void releaseRecovered()
    {
        for (int i = 0; i < slots; i++)
        {
            if (lastLsn[i] == Long.MAX_VALUE)
            {
                lastLsn[i] = 0;
            }
        }
    }

    /** Empties the log durably (a clean start: the dirty map is exact). */
    public void clear()
    {
        recovered = new long[0];
        damaged = false;
        for (int i = 0; i < slots; i++)
        {
            extents[i] = 0;
            lastLsn[i] = 0;
            map.putLong(offset + i * MetadataFile.AL_SLOT_BYTES, 0L);
            map.putLong(offset + i * MetadataFile.AL_SLOT_BYTES + 8, 0L);
        }
        map.force(offset, slots * MetadataFile.AL_SLOT_BYTES);
    }

    private void write(final int slot, final long key)
    {
        final int at = offset + slot * MetadataFile.AL_SLOT_BYTES;
        map.putLong(at, key);
        map.putInt(at + 8, checksum(slot, key));
        map.putInt(at + 12, 0);
        final int page = at & ~(MetadataFile.HEADER_BYTES - 1);
        map.force(page, MetadataFile.HEADER_BYTES);
        transactions++;
    }

    private int checksum(final int slot, final long key)
    {
        crc.reset();
        for (int i = 0; i < 4; i++)
        {
            crc.update(slot >>> (8 * i));
        }
        for (int i = 0; i < 8; i++)
        {
            crc.update((int)(key >>> (8 * i)));
        }
        return (int)crc.getValue() | 1; // never 0, so an empty slot is never "valid"
    }
}
