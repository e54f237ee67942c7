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
 * has acknowledged every write to it and this node's disk holds them; if none qualifies, the caller forces
 * the image and the dirty map (which then cover the oldest extent) before the slot is reused. An extent
 * still owed a post-crash compare is given up only when nothing else is left, and then marked dirty whole.
 *
 * <p>Slot layout (16 bytes, little-endian): {@code extent+1 u64 | crc32c(slot index, extent+1) u32 |
 * reserved u32}; 0 is an empty slot. One page force per newly hot extent, which also lists the next
 * {@value #PREFETCH} - 1 extents where slots are free or cool.
 * Not thread-safe: the write path calls it under its lock.
 */
public final class ActivityLog
{
    /** What the caller does when an extent must leave the log before the standby acknowledged it. */
    public interface Eviction
    {
        /** Force the image and the dirty map: {@code extent}, not yet acknowledged, is about to be forgotten here. */
        void forget(long extent);

        /**
         * {@code extent} was listed at a machine crash and has not been compared with the peer yet: make
         * every block of it dirty (durably) before it is forgotten here.
         */
        void forgetUnverified(long extent);
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
    private volatile int used;
    /** Extent+1 → slot, so a write to a hot extent costs a hash probe, not a scan of every slot. */
    private final SlotIndex index;
    /** Extents activated together with a cold one (itself included). */
    static final int PREFETCH = 16;
    /** {@code lastLsn} of an extent listed at a machine crash and not yet compared with the peer: it never cools. */
    private static final long UNVERIFIED = Long.MAX_VALUE;

    ActivityLog(final MappedByteBuffer map, final int offset, final int slots, final int extentShift, final Path path)
    {
        this.map = map;
        this.offset = offset;
        this.slots = slots;
        this.extentShift = extentShift;
        this.extents = new long[slots];
        this.lastLsn = new long[slots];
        this.lastUse = new long[slots];
        this.index = new SlotIndex(slots);
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
            lastLsn[i] = UNVERIFIED; // protected until the recovery resync says otherwise
            index.put(stored, i);
            used++;
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

    /** Transactions (one forced write of the slots' page) so far: a newly hot extent costs one. */
    public long transactions()
    {
        return transactions;
    }

    /** Extents currently listed. */
    public int hotExtents()
    {
        return used;
    }

    /**
     * Whether half the slots are taken: then the primary forces its image now and then, so extents whose
     * writes the standby holds can cool (they may not while only the page cache has them).
     */
    public boolean underPressure()
    {
        return used * 2 >= slots;
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
        final int hot = index.get(key);
        if (hot >= 0)
        {
            lastUse[hot] = clock;
            if (lastLsn[hot] != UNVERIFIED)
            {
                lastLsn[hot] = Math.max(lastLsn[hot], lsn);
            }
            return;
        }
        int slot = pick(safeLsn, false);
        if (slot < 0)
        {
            slot = pick(safeLsn, true);
            if (lastLsn[slot] == UNVERIFIED)
            {
                eviction.forgetUnverified(extents[slot] - 1);
            }
            else
            {
                eviction.forget(extents[slot] - 1);
            }
        }
        int lowSlot = slot;
        int highSlot = slot;
        place(slot, key, lsn, clock);
        // One transaction for the next extents too, where a slot is free or cool: a sequential writer
        // then pays one forced page write per PREFETCH extents, not one per extent. They are placed as
        // least recently used, so they are the first to go when slots run short.
        for (long next = key + 1; next <= key + PREFETCH - 1; next++)
        {
            if (index.get(next) >= 0)
            {
                continue;
            }
            final int extra = pick(safeLsn, false);
            if (extra < 0)
            {
                break;
            }
            place(extra, next, 0, 0);
            lowSlot = Math.min(lowSlot, extra);
            highSlot = Math.max(highSlot, extra);
        }
        final int from = (offset + lowSlot * MetadataFile.AL_SLOT_BYTES) & ~(MetadataFile.HEADER_BYTES - 1);
        final int to = offset + (highSlot + 1) * MetadataFile.AL_SLOT_BYTES;
        map.force(from, to - from);
        transactions++;
    }

    /**
     * A free slot, else the least recently used cool one (all its writes acknowledged), else with
     * {@code any} the least recently used one — an extent still owed a post-crash compare only when
     * nothing else is left; -1 if none.
     */
    private int pick(final long safeLsn, final boolean any)
    {
        int coolest = -1;
        int oldest = -1;
        int oldestUnverified = -1;
        for (int i = 0; i < slots; i++)
        {
            if (extents[i] == 0)
            {
                return i;
            }
            if (lastLsn[i] == UNVERIFIED)
            {
                if (oldestUnverified < 0 || lastUse[i] < lastUse[oldestUnverified])
                {
                    oldestUnverified = i;
                }
                continue;
            }
            if (lastLsn[i] <= safeLsn && (coolest < 0 || lastUse[i] < lastUse[coolest]))
            {
                coolest = i;
            }
            if (oldest < 0 || lastUse[i] < lastUse[oldest])
            {
                oldest = i;
            }
        }
        if (coolest >= 0 || !any)
        {
            return coolest;
        }
        return oldest >= 0 ? oldest : oldestUnverified;
    }

    /** Puts {@code key} into {@code slot} (in memory and in the mapped file; the caller forces it). */
    private void place(final int slot, final long key, final long lsn, final long use)
    {
        if (extents[slot] != 0)
        {
            index.remove(extents[slot]);
        }
        else
        {
            used++;
        }
        final int at = offset + slot * MetadataFile.AL_SLOT_BYTES;
        map.putLong(at, key);
        map.putInt(at + 8, checksum(slot, key));
        map.putInt(at + 12, 0);
        extents[slot] = key;
        lastLsn[slot] = lsn;
        lastUse[slot] = use;
        index.put(key, slot);
    }

    /** The recovery resync covered the recovered extents: they may cool like any other. */
    public void releaseRecovered()
    {
        for (int i = 0; i < slots; i++)
        {
            if (lastLsn[i] == UNVERIFIED)
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
        index.clear();
        used = 0;
        for (int i = 0; i < slots; i++)
        {
            extents[i] = 0;
            lastLsn[i] = 0;
            map.putLong(offset + i * MetadataFile.AL_SLOT_BYTES, 0L);
            map.putLong(offset + i * MetadataFile.AL_SLOT_BYTES + 8, 0L);
        }
        map.force(offset, slots * MetadataFile.AL_SLOT_BYTES);
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

    /** Open-addressing map from extent+1 to slot; at most {@code slots} entries, never grows. */
    private static final class SlotIndex
    {
        private final long[] keys;
        private final int[] values;

        SlotIndex(final int slots)
        {
            final int capacity = Integer.highestOneBit(Math.max(16, slots) * 4 - 1);
            keys = new long[capacity];
            values = new int[capacity];
        }

        int get(final long key)
        {
            int i = home(key);
            while (keys[i] != 0)
            {
                if (keys[i] == key)
                {
                    return values[i];
                }
                i = (i + 1) & (keys.length - 1);
            }
            return -1;
        }

        void put(final long key, final int value)
        {
            int i = home(key);
            while (keys[i] != 0 && keys[i] != key)
            {
                i = (i + 1) & (keys.length - 1);
            }
            keys[i] = key;
            values[i] = value;
        }

        void remove(final long key)
        {
            final int mask = keys.length - 1;
            int hole = home(key);
            while (keys[hole] != key)
            {
                if (keys[hole] == 0)
                {
                    return;
                }
                hole = (hole + 1) & mask;
            }
            int i = (hole + 1) & mask;
            while (keys[i] != 0)
            {
                final int h = home(keys[i]);
                if (((i - h) & mask) >= ((i - hole) & mask))
                {
                    keys[hole] = keys[i];
                    values[hole] = values[i];
                    hole = i;
                }
                i = (i + 1) & mask;
            }
            keys[hole] = 0;
        }

        void clear()
        {
            Arrays.fill(keys, 0);
        }

        private int home(final long key)
        {
            return (int)((key * 0x9E3779B97F4A7C15L) >>> 32) & (keys.length - 1);
        }
    }

}
