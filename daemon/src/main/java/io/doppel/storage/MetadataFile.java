package io.doppel.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.UUID;
import java.util.zip.CRC32C;

/**
 * A volume's own state, in a small memory-mapped file next to (never inside) the image: two copies of
 * a checksummed header (identity, generation identifiers, role, the copy's state, a clean-shutdown
 * flag), the activity log, and the dirty map. Layout in {@code docs/metadata.md}.
 *
 * <p>Why two header copies: a header update must survive a crash in the middle of writing it. Each
 * update goes to the copy not holding the newest state, with a higher sequence number, and is forced
 * before the call returns; on open the valid copy with the highest sequence wins.
 *
 * <p>Why generation identifiers (as DRBD has them): they say whether the dirty map describes the
 * difference between this copy and the peer's. {@code current} names the data history this copy holds;
 * a primary that takes writes while its standby is not following starts a new {@code current} and keeps
 * the old one as {@code bitmap}: from then on the dirty map holds exactly what the standby (still at the
 * old generation) lacks. A standby that completes a resync adopts the primary's {@code current}.
 */
public final class MetadataFile implements Closeable
{
    public static final byte[] MAGIC = "DOPLMETA".getBytes(StandardCharsets.US_ASCII);
    public static final int FORMAT_VERSION = 2;
    public static final int HEADER_BYTES = 4096;
    /** Both header copies. */
    public static final int HEADERS_BYTES = 2 * HEADER_BYTES;
    public static final int AL_SLOTS = 1024;
    public static final int AL_SLOT_BYTES = 16;
    public static final int AL_EXTENT_SHIFT = 22; // 4 MiB extents, as DRBD's

    static final int MAGIC_OFFSET = 0;
    static final int VERSION_OFFSET = 8;
    static final int HEADER_LENGTH_OFFSET = 12;
    static final int UUID_OFFSET = 16;
    static final int SIZE_OFFSET = 32;
    static final int BLOCK_SIZE_OFFSET = 40;
    static final int FLAGS_OFFSET = 44;
    static final int BITMAP_OFFSET_OFFSET = 48;
    static final int BITMAP_LENGTH_OFFSET = 56;
    static final int SEQUENCE_OFFSET = 64;
    static final int CURRENT_GEN_OFFSET = 72;
    static final int BITMAP_GEN_OFFSET = 80;
    static final int HISTORY_GEN_OFFSET = 88; // two
    static final int ROLE_OFFSET = 104;
    static final int DISK_OFFSET = 105;
    static final int PEER_DISK_OFFSET = 106;
    static final int AL_EXTENT_SHIFT_OFFSET = 108;
    static final int AL_OFFSET_OFFSET = 112;
    static final int AL_SLOTS_OFFSET = 120;
    static final int BOOT_ID_OFFSET = 128; // 16 bytes: the kernel boot the file was last opened in
    static final int TRACKING_SINCE_OFFSET = 144; // u64 ms since the epoch: when bitmapGen was set (0: not tracking)
    static final int CHECKSUM_OFFSET = HEADER_BYTES - 4;

    /** Flag: the file was closed cleanly (bitmap forced, nothing in flight). */
    public static final int FLAG_CLEAN = 1;
    /** Flag: a machine crash was found; the activity-log extents must be compared before the log is trusted. */
    public static final int FLAG_AL_RECOVERY = 2;
    /**
     * Flag: this copy may hold blocks the primary does not know about or may have lost some it was sent
     * (a machine crash, or a former primary that had unreplicated writes): a whole-volume compare is due.
     */
    public static final int FLAG_COPY_IN_DOUBT = 4;

    public static final int ROLE_NONE = 0;
    public static final int ROLE_PRIMARY = 1;
    public static final int ROLE_STANDBY = 2;

    /** This copy's state, as its own node knows it. */
    public enum Disk
    {
        /** Never synced from a primary (a new standby, or one whose compare never finished). */
        UNKNOWN,
        /** A prefix of the primary's writes in order: usable after a failover. */
        CONSISTENT,
        /** A resync was under way: blocks of different ages are mixed. Not usable. */
        INCONSISTENT
    }

    private static final SecureRandom RANDOM = new SecureRandom();

    private final Path path;
    private final FileChannel channel;
    private final MappedByteBuffer map;
    private final UUID uuid;
    private final DirtyMap dirtyMap;
    private final ActivityLog activityLog;
    private final long volumeSize;
    private final int blockSize;
    private final long bitmapBytes;
    private final boolean openedClean;
    private final boolean sameBoot;
    private final long recoveredInFlight;
    private final UUID bootId = bootId();

    private long sequence;
    private int flags;
    private long currentGen;
    private long bitmapGen;
    private final long[] historyGens = new long[2];
    private int role;
    private Disk disk;
    private int peerDisk;
    private long trackingSince;
    private boolean closed;

    private MetadataFile(final Path path, final FileChannel channel, final MappedByteBuffer map, final ByteBuffer header,
        final long volumeSize, final int blockSize, final long bitmapBytes, final int alBytes, final Runnable forceImage)
    {
        this.path = path;
        this.channel = channel;
        this.map = map;
        this.volumeSize = volumeSize;
        this.blockSize = blockSize;
        this.bitmapBytes = bitmapBytes;
        this.uuid = new UUID(header.getLong(UUID_OFFSET), header.getLong(UUID_OFFSET + 8));
        this.sequence = header.getLong(SEQUENCE_OFFSET);
        this.flags = header.getInt(FLAGS_OFFSET);
        this.currentGen = header.getLong(CURRENT_GEN_OFFSET);
        this.bitmapGen = header.getLong(BITMAP_GEN_OFFSET);
        this.historyGens[0] = header.getLong(HISTORY_GEN_OFFSET);
        this.historyGens[1] = header.getLong(HISTORY_GEN_OFFSET + 8);
        this.role = header.get(ROLE_OFFSET);
        final int d = header.get(DISK_OFFSET);
        this.disk = d >= 0 && d < Disk.values().length ? Disk.values()[d] : Disk.UNKNOWN;
        this.peerDisk = header.get(PEER_DISK_OFFSET);
        this.trackingSince = header.getLong(TRACKING_SINCE_OFFSET);
        this.openedClean = (flags & FLAG_CLEAN) != 0;
        this.sameBoot = bootId.equals(new UUID(header.getLong(BOOT_ID_OFFSET), header.getLong(BOOT_ID_OFFSET + 8)));
        final long blocks = blocks(volumeSize, blockSize);
        this.activityLog = new ActivityLog(map, HEADERS_BYTES, AL_SLOTS, AL_EXTENT_SHIFT, path);
        this.dirtyMap = new DirtyMap(map, HEADERS_BYTES + alBytes, blocks, blockSize);
        // Nothing is in flight before the link is up: what a dead process had in flight is dirty again.
        this.recoveredInFlight = dirtyMap.returnInFlight();
        if (!openedClean && !sameBoot)
        {
            flags |= FLAG_AL_RECOVERY | FLAG_COPY_IN_DOUBT; // persisted by markOpen()
        }
        if ((flags & FLAG_AL_RECOVERY) == 0)
        {
            // The dirty map is exact after a clean close or a mere process crash; make what the dead
            // process left in the page cache (its map and its image writes) durable before the log that
            // covered it is emptied.
            map.force();
            if (!openedClean)
            {
                forceImage.run();
            }
            activityLog.clear();
        }
    }

    private static long blocks(final long volumeSize, final int blockSize)
    {
        return (volumeSize + blockSize - 1) / blockSize;
    }

    private static int alBytes()
    {
        return (int)roundUp((long)AL_SLOTS * AL_SLOT_BYTES, HEADER_BYTES);
    }

    /**
     * Opens the metadata at {@code path}, creating it for a volume of {@code volumeSize} bytes and
     * {@code blockSize}-byte blocks when absent, and marks it open (not clean) on disk. An existing file
     * must carry the same identity; a mismatch is refused rather than silently reset, because the
     * bitmap would no longer describe the image.
     */
    public static MetadataFile openOrCreate(final Path path, final long volumeSize, final int blockSize)
        throws IOException
    {
        return openOrCreate(path, volumeSize, blockSize, () -> { });
    }

    /**
     * As {@link #openOrCreate(Path, long, int)}; {@code forceImage} forces the volume's image file to disk
     * and runs after a process crash, before the activity log is emptied.
     */
    public static MetadataFile openOrCreate(final Path path, final long volumeSize, final int blockSize,
        final Runnable forceImage) throws IOException
    {
        final long blocks = blocks(volumeSize, blockSize);
        final long bitmapBytes = roundUp(DirtyMap.bytesFor(blocks), HEADER_BYTES);
        final int alBytes = alBytes();
        final long total = HEADERS_BYTES + alBytes + bitmapBytes;
        if (total > Integer.MAX_VALUE)
        {
            throw new IOException(path + ": a bitmap for " + blocks + " blocks needs " + bitmapBytes
                + " bytes; use a larger block-size");
        }
        final boolean exists = Files.exists(path) && Files.size(path) > 0;
        Files.createDirectories(path.toAbsolutePath().getParent());
        final FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ,
            StandardOpenOption.WRITE);
        try
        {
            final ByteBuffer header;
            if (exists)
            {
                final ByteBuffer both = ByteBuffer.allocate(HEADERS_BYTES).order(ByteOrder.LITTLE_ENDIAN);
                channel.read(both, 0);
                header = newestValid(path, both.flip(), volumeSize, blockSize, bitmapBytes);
                if (channel.size() < total)
                {
                    throw new IOException(path + ": truncated metadata, " + channel.size() + " of " + total + " bytes");
                }
            }
            else
            {
                header = header(UUID.randomUUID(), volumeSize, blockSize, bitmapBytes);
                channel.write(ByteBuffer.wrap(new byte[1]), total - 1);
                // sequence 1 lives in copy 1, so the first update (sequence 2) does not overwrite the only copy
                channel.write(header.duplicate(), HEADER_BYTES);
                channel.force(true);
                // the new file's name must survive a crash too
                try (FileChannel dir = FileChannel.open(path.toAbsolutePath().getParent(), StandardOpenOption.READ))
                {
                    dir.force(true);
                }
            }
            final MappedByteBuffer map = channel.map(FileChannel.MapMode.READ_WRITE, 0, total);
            map.order(ByteOrder.LITTLE_ENDIAN);
            final MetadataFile file = new MetadataFile(path, channel, map, header, volumeSize, blockSize, bitmapBytes,
                alBytes, forceImage);
            file.markOpen();
            return file;
        }
        catch (final IOException | RuntimeException e)
        {
            channel.close();
            throw e;
        }
    }

    /** A fresh header (sequence 1, no generation, no role, unknown copy). */
    static ByteBuffer header(final UUID uuid, final long size, final int blockSize, final long bitmapBytes)
    {
        final ByteBuffer b = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC_OFFSET, MAGIC);
        b.putInt(VERSION_OFFSET, FORMAT_VERSION);
        b.putInt(HEADER_LENGTH_OFFSET, HEADER_BYTES);
        b.putLong(UUID_OFFSET, uuid.getMostSignificantBits());
        b.putLong(UUID_OFFSET + 8, uuid.getLeastSignificantBits());
        b.putLong(SIZE_OFFSET, size);
        b.putInt(BLOCK_SIZE_OFFSET, blockSize);
        b.putInt(FLAGS_OFFSET, FLAG_CLEAN);
        b.putLong(BITMAP_OFFSET_OFFSET, HEADERS_BYTES + alBytes());
        b.putLong(BITMAP_LENGTH_OFFSET, bitmapBytes);
        b.putLong(SEQUENCE_OFFSET, 1);
        b.putInt(AL_EXTENT_SHIFT_OFFSET, AL_EXTENT_SHIFT);
        b.putLong(AL_OFFSET_OFFSET, HEADERS_BYTES);
        b.putInt(AL_SLOTS_OFFSET, AL_SLOTS);
        b.putInt(CHECKSUM_OFFSET, checksum(b));
        return b;
    }

    /** Of the two header copies, the valid one with the higher sequence; names the problem when none is. */
    static ByteBuffer newestValid(final Path path, final ByteBuffer both, final long size, final int blockSize,
        final long bitmapBytes) throws IOException
    {
        if (both.limit() < HEADER_BYTES)
        {
            throw new IOException(path + ": not a doppel metadata file (bad magic)");
        }
        ByteBuffer best = null;
        IOException firstProblem = null;
        for (int copy = 0; copy < Math.min(2, both.limit() / HEADER_BYTES); copy++)
        {
            final ByteBuffer b = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            b.put(0, both, copy * HEADER_BYTES, HEADER_BYTES);
            try
            {
                validate(path, b, size, blockSize, bitmapBytes);
                if (best == null || b.getLong(SEQUENCE_OFFSET) > best.getLong(SEQUENCE_OFFSET))
                {
                    best = b;
                }
            }
            catch (final IOException e)
            {
                if (firstProblem == null)
                {
                    firstProblem = e;
                }
            }
        }
        if (best == null)
        {
            throw firstProblem.getMessage().contains("bad magic") && both.limit() >= HEADERS_BYTES
                && both.duplicate().position(HEADER_BYTES).mismatch(ByteBuffer.wrap(MAGIC)) == MAGIC.length
                ? new IOException(path + ": both metadata header copies are damaged") : firstProblem;
        }
        return best;
    }

    static UUID validate(final Path path, final ByteBuffer b, final long size, final int blockSize,
        final long bitmapBytes) throws IOException
    {
        b.order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < HEADER_BYTES || b.mismatch(ByteBuffer.wrap(MAGIC)) != MAGIC.length)
        {
            throw new IOException(path + ": not a doppel metadata file (bad magic)");
        }
        final int version = b.getInt(VERSION_OFFSET);
        if (version != FORMAT_VERSION)
        {
            throw new IOException(path + ": metadata format version " + version + " is not supported: expected "
                + FORMAT_VERSION + ".." + FORMAT_VERSION
                + (version == 1 ? " (a file from doppel 0.1: move it away; the next connect does a full compare)" : ""));
        }
        final int stored = b.getInt(CHECKSUM_OFFSET);
        final int actual = checksum(b);
        if (stored != actual)
        {
            throw new IOException(path + ": metadata header checksum mismatch (stored " + Integer.toHexString(stored)
                + ", computed " + Integer.toHexString(actual) + "): the file is damaged");
        }
        final long storedSize = b.getLong(SIZE_OFFSET);
        final int storedBlock = b.getInt(BLOCK_SIZE_OFFSET);
        if (storedSize != size || storedBlock != blockSize)
        {
            throw new IOException(path + ": metadata was written for size=" + storedSize + " block-size="
                + storedBlock + ", but the volume now has size=" + size + " block-size=" + blockSize
                + "; move the metadata file away to start over with a full compare");
        }
        if (b.getLong(BITMAP_LENGTH_OFFSET) != bitmapBytes || b.getLong(BITMAP_OFFSET_OFFSET) != HEADERS_BYTES + alBytes()
            || b.getInt(AL_SLOTS_OFFSET) != AL_SLOTS || b.getInt(AL_EXTENT_SHIFT_OFFSET) != AL_EXTENT_SHIFT
            || b.getLong(AL_OFFSET_OFFSET) != HEADERS_BYTES)
        {
            throw new IOException(path + ": metadata bitmap layout does not match this version of doppel");
        }
        return new UUID(b.getLong(UUID_OFFSET), b.getLong(UUID_OFFSET + 8));
    }

    static int checksum(final ByteBuffer header)
    {
        final CRC32C crc = new CRC32C();
        crc.update(header.duplicate().position(0).limit(CHECKSUM_OFFSET));
        return (int)crc.getValue();
    }

    private static long roundUp(final long value, final long unit)
    {
        return (value + unit - 1) / unit * unit;
    }

    /** Writes the in-memory state as the next header copy and forces it. Caller holds the monitor. */
    private void persist()
    {
        sequence++;
        final ByteBuffer b = header(uuid, volumeSize, blockSize, bitmapBytes);
        b.putInt(FLAGS_OFFSET, flags);
        b.putLong(SEQUENCE_OFFSET, sequence);
        b.putLong(CURRENT_GEN_OFFSET, currentGen);
        b.putLong(BITMAP_GEN_OFFSET, bitmapGen);
        b.putLong(HISTORY_GEN_OFFSET, historyGens[0]);
        b.putLong(HISTORY_GEN_OFFSET + 8, historyGens[1]);
        b.put(ROLE_OFFSET, (byte)role);
        b.put(DISK_OFFSET, (byte)disk.ordinal());
        b.put(PEER_DISK_OFFSET, (byte)peerDisk);
        b.putLong(TRACKING_SINCE_OFFSET, trackingSince);
        b.putLong(BOOT_ID_OFFSET, bootId.getMostSignificantBits());
        b.putLong(BOOT_ID_OFFSET + 8, bootId.getLeastSignificantBits());
        b.putInt(CHECKSUM_OFFSET, checksum(b));
        final int at = (int)(sequence & 1) * HEADER_BYTES;
        map.put(at, b, 0, HEADER_BYTES);
        map.force(at, HEADER_BYTES);
    }

    private synchronized void markOpen()
    {
        flags &= ~FLAG_CLEAN;
        persist();
    }

    public Path path()
    {
        return path;
    }

    public UUID uuid()
    {
        return uuid;
    }

    public DirtyMap dirtyMap()
    {
        return dirtyMap;
    }

    public ActivityLog activityLog()
    {
        return activityLog;
    }

    /** Whether the previous run closed this file cleanly (false after a crash or kill -9). */
    public boolean openedClean()
    {
        return openedClean;
    }

    /**
     * Whether the last run ended without closing this file while the machine kept running (a killed or
     * crashed process): the page cache then still held every write to the image and to this file, so
     * the dirty map is exact. After a machine crash (another boot) it is not, and the activity log
     * and the copy's own data are in doubt.
     */
    public boolean processCrashOnly()
    {
        return !openedClean && sameBoot;
    }

    /** Whether the machine went down (or the file moved to another one) without this file being closed. */
    public boolean machineCrash()
    {
        return !openedClean && !sameBoot;
    }

    /** The kernel's id of this boot; a random one where Linux does not provide it (then every restart is a reboot). */
    private static UUID bootId()
    {
        try
        {
            return UUID.fromString(Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).trim());
        }
        catch (final IOException | IllegalArgumentException e)
        {
            return UUID.randomUUID();
        }
    }

    /**
     * Makes the file look as if it was last opened in another boot: for fault tests that stage a machine
     * crash after killing the process. Refuses a file whose header does not validate.
     */
    public static void forgetBoot(final Path path, final long volumeSize, final int blockSize) throws IOException
    {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE))
        {
            final ByteBuffer both = ByteBuffer.allocate(HEADERS_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(both, 0);
            final long bitmapBytes = roundUp(DirtyMap.bytesFor(blocks(volumeSize, blockSize)), HEADER_BYTES);
            final ByteBuffer b = newestValid(path, both.flip(), volumeSize, blockSize, bitmapBytes);
            b.putLong(BOOT_ID_OFFSET, 0).putLong(BOOT_ID_OFFSET + 8, 0);
            b.putLong(SEQUENCE_OFFSET, b.getLong(SEQUENCE_OFFSET) + 1);
            b.putInt(CHECKSUM_OFFSET, checksum(b));
            ch.write(b.position(0), (b.getLong(SEQUENCE_OFFSET) & 1) * HEADER_BYTES);
            ch.force(true);
        }
    }

    /** Blocks a dead process had in flight, returned to the dirty map when this file was opened. */
    public long recoveredInFlight()
    {
        return recoveredInFlight;
    }

    /** After a machine crash: the activity-log extents still have to be compared with the peer. */
    public synchronized boolean alRecoveryPending()
    {
        return (flags & FLAG_AL_RECOVERY) != 0;
    }

    /** The recovery resync after a machine crash completed: the activity log may be trusted and cool again. */
    public synchronized void alRecoveryDone()
    {
        if ((flags & FLAG_AL_RECOVERY) != 0)
        {
            flags &= ~FLAG_AL_RECOVERY;
            persist();
        }
    }

    /** Whether this copy needs a whole-volume compare before anything else (see {@link #FLAG_COPY_IN_DOUBT}). */
    public synchronized boolean copyInDoubt()
    {
        return (flags & FLAG_COPY_IN_DOUBT) != 0;
    }

    /** Records durably that this copy needs a whole-volume compare. */
    public synchronized void doubtCopy()
    {
        if ((flags & FLAG_COPY_IN_DOUBT) == 0)
        {
            flags |= FLAG_COPY_IN_DOUBT;
            persist();
        }
    }

    public synchronized long currentGen()
    {
        return currentGen;
    }

    public synchronized long bitmapGen()
    {
        return bitmapGen;
    }

    /** Whether {@code gen} is this copy's current, bitmap or a historic generation (0 never is). */
    public synchronized boolean knows(final long gen)
    {
        return gen != 0 && (gen == currentGen || gen == bitmapGen || gen == historyGens[0] || gen == historyGens[1]);
    }

    public synchronized Disk disk()
    {
        return disk;
    }

    public synchronized int role()
    {
        return role;
    }

    /** Records this node's role for the volume (for split-brain detection after a role change). */
    public synchronized void role(final int value)
    {
        if (role != value)
        {
            role = value;
            persist();
        }
    }

    /** A primary's first generation, made when it has none (a new volume). */
    public synchronized void ensureGeneration()
    {
        if (currentGen == 0)
        {
            currentGen = newGen();
            disk = Disk.CONSISTENT; // a primary's own copy is its data
            persist();
        }
    }

    /**
     * The primary starts writing without its standby following: a new data generation begins, and the
     * dirty map tracks everything since {@code bitmap} (the standby's generation). Kept when already
     * tracking, so a second outage does not lose the first one's base.
     */
    public synchronized void startTracking()
    {
        if (bitmapGen == 0)
        {
            historyGens[1] = historyGens[0];
            historyGens[0] = currentGen;
            bitmapGen = currentGen;
            currentGen = newGen();
            trackingSince = System.currentTimeMillis();
            persist();
        }
    }

    /** When this node started writing without its peer following (ms since the epoch), or 0. */
    public synchronized long trackingSince()
    {
        return trackingSince;
    }

    /** Whether the dirty map is tracking changes since {@link #bitmapGen()}. */
    public synchronized boolean tracking()
    {
        return bitmapGen != 0;
    }

    /**
     * The standby confirmed it adopted {@code gen}: when that is still this primary's current generation,
     * the tracking base is gone (a newer generation started since keeps its base).
     */
    public synchronized void peerInSync(final long gen)
    {
        if (bitmapGen != 0 && gen == currentGen)
        {
            bitmapGen = 0;
            trackingSince = 0;
            persist();
        }
    }

    /** A standby's copy: which generation it holds and in what state. Persisted before returning. */
    public synchronized void copyState(final long gen, final Disk state)
    {
        final int newFlags = state == Disk.CONSISTENT ? flags & ~FLAG_COPY_IN_DOUBT : flags; // a finished sync
        if (gen == currentGen && state == disk && bitmapGen == 0 && newFlags == flags)
        {
            return;
        }
        if (gen != currentGen && currentGen != 0)
        {
            historyGens[1] = historyGens[0];
            historyGens[0] = currentGen;
        }
        currentGen = gen;
        bitmapGen = 0; // a standby tracks nothing of its own
        trackingSince = 0;
        disk = state;
        flags = newFlags;
        persist();
    }

    private static long newGen()
    {
        long g;
        do
        {
            g = RANDOM.nextLong();
        }
        while (g == 0);
        return g;
    }

    /** Forces the dirty map and activity log to stable storage. */
    public void flush()
    {
        map.force();
    }

    /**
     * Closes the file. Only a close with nothing in flight and every write forced may call itself clean
     * ({@code clean}); the next open then knows the dirty map is exact.
     */
    public synchronized void close(final boolean clean) throws IOException
    {
        if (closed)
        {
            return;
        }
        closed = true;
        try
        {
            map.force();
            if (clean)
            {
                flags |= FLAG_CLEAN;
                persist();
            }
        }
        finally
        {
            channel.close();
        }
    }

    @Override
    public void close() throws IOException
    {
        close(dirtyMap.inFlightBlocks() == 0);
    }
}
