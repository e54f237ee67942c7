package io.doppel.twoway;

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
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * The per-block version vectors of a two-way volume, in a memory-mapped file beside its metadata
 * ({@code <data-dir>/<volume>.versions}), never on the heap: one entry per block, a 32-bit counter per
 * node slot and the {@link HybridClock} stamp of the version the block holds. A sparse file: blocks never
 * written cost nothing on disk. Layout, with a magic, a version and checksums, in {@code docs/metadata.md}.
 *
 * <p>Not thread-safe per block: callers serialise access to a block (the volume's write lock, the link's
 * apply thread). Absolute-index access only; nothing allocates per call.
 */
public final class VersionVectorFile implements Closeable
{
    static final long MAGIC = 0x5352_4556_4C50_4F44L; // "DOPLVERS" little-endian
    static final int VERSION = 1;
    static final int HEADER_BYTES = 4096;
    static final int NAME_BYTES = 64;
    static final int NAMES_OFFSET = 64;
    /** Two alternating 16-byte records of the highest stamp (so a torn write leaves the other). */
    static final int CLOCK_OFFSET = 4096;
    static final int ENTRIES_OFFSET = 8192;
    private static final long WINDOW_TARGET = 1L << 30;

    private final Path path;
    private final FileChannel channel;
    private final int slots;
    private final int entryBytes;
    private final long blocks;
    private final long entriesPerWindow;
    private final MappedByteBuffer[] windows;
    private final MappedByteBuffer clock;
    private final List<String> nodes;
    private long clockSequence;

    private VersionVectorFile(final Path path, final FileChannel channel, final List<String> nodes, final long blocks)
        throws IOException
    {
        this.path = path;
        this.channel = channel;
        this.nodes = List.copyOf(nodes);
        this.slots = nodes.size();
        this.entryBytes = 4 * slots + 8;
        this.blocks = blocks;
        this.entriesPerWindow = WINDOW_TARGET / entryBytes;
        final int count = (int)((blocks + entriesPerWindow - 1) / entriesPerWindow);
        this.windows = new MappedByteBuffer[count];
        for (int i = 0; i < count; i++)
        {
            final long first = i * entriesPerWindow;
            final long n = Math.min(entriesPerWindow, blocks - first);
            windows[i] = channel.map(FileChannel.MapMode.READ_WRITE, ENTRIES_OFFSET + first * entryBytes, n * entryBytes);
            windows[i].order(ByteOrder.LITTLE_ENDIAN);
        }
        this.clock = channel.map(FileChannel.MapMode.READ_WRITE, CLOCK_OFFSET, 32);
        clock.order(ByteOrder.LITTLE_ENDIAN);
        for (int r = 0; r < 2; r++)
        {
            final long seq = clock.getInt(16 * r + 8) & 0xffffffffL;
            if (clock.getInt(16 * r + 12) == check(clock.getLong(16 * r), seq) && seq > clockSequence)
            {
                clockSequence = seq;
            }
        }
    }

    /**
     * Opens the file, creating it (sparse, all versions zero) when missing. {@code nodes} are the node
     * names in slot order (sorted, the same on every node). A file made for other nodes, another block
     * size or block count is refused, naming both.
     */
    public static VersionVectorFile open(final Path path, final List<String> nodes, final int blockSize,
        final long blocks) throws IOException
    {
        if (nodes.size() < 2 || nodes.size() > HybridClock.MAX_SLOTS)
        {
            throw new IOException(path + ": " + nodes.size() + " nodes; expected 2-" + HybridClock.MAX_SLOTS);
        }
        final boolean exists = Files.exists(path);
        final FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ,
            StandardOpenOption.WRITE);
        try
        {
            final ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            if (!exists || ch.size() == 0)
            {
                writeHeader(header, nodes, blockSize, blocks);
                ch.write(header, 0); // writeHeader left it positioned at 0 with its limit at the end
                ch.write(ByteBuffer.wrap(new byte[1]), ENTRIES_OFFSET + blocks * (4L * nodes.size() + 8) - 1);
                ch.force(true);
            }
            else
            {
                checkHeader(path, ch, header, nodes, blockSize, blocks);
            }
            return new VersionVectorFile(path, ch, nodes, blocks);
        }
        catch (final IOException | RuntimeException e)
        {
            ch.close();
            throw e;
        }
    }

    private static void writeHeader(final ByteBuffer h, final List<String> nodes, final int blockSize, final long blocks)
    {
        h.putLong(0, MAGIC).putInt(8, VERSION).putInt(12, HEADER_BYTES).putInt(16, nodes.size())
            .putInt(20, 4 * nodes.size() + 8).putInt(24, blockSize).putLong(32, blocks);
        for (int i = 0; i < nodes.size(); i++)
        {
            final byte[] name = nodes.get(i).getBytes(StandardCharsets.UTF_8);
            h.put(NAMES_OFFSET + i * NAME_BYTES, name, 0, Math.min(name.length, NAME_BYTES));
        }
        final CRC32C crc = new CRC32C();
        crc.update(h.array(), 0, HEADER_BYTES - 4);
        h.putInt(HEADER_BYTES - 4, (int)crc.getValue());
        h.position(0).limit(HEADER_BYTES);
    }

    private static void checkHeader(final Path path, final FileChannel ch, final ByteBuffer h, final List<String> nodes,
        final int blockSize, final long blocks) throws IOException
    {
        while (h.hasRemaining() && ch.read(h, h.position()) > 0)
        {
            // read the whole header
        }
        final CRC32C crc = new CRC32C();
        crc.update(h.array(), 0, HEADER_BYTES - 4);
        if (h.getLong(0) != MAGIC)
        {
            throw new IOException(path + ": not a doppel version-vector file (magic 0x" + Long.toHexString(h.getLong(0))
                + ", expected DOPLVERS)");
        }
        if (h.getInt(8) != VERSION)
        {
            throw new IOException(path + ": version-vector file format " + h.getInt(8) + "; this doppel reads "
                + VERSION);
        }
        if (h.getInt(HEADER_BYTES - 4) != (int)crc.getValue())
        {
            throw new IOException(path + ": version-vector file header checksum mismatch (damaged header)");
        }
        final List<String> had = new ArrayList<>();
        for (int i = 0; i < h.getInt(16); i++)
        {
            int n = 0;
            while (n < NAME_BYTES && h.get(NAMES_OFFSET + i * NAME_BYTES + n) != 0)
            {
                n++;
            }
            had.add(new String(h.array(), NAMES_OFFSET + i * NAME_BYTES, n, StandardCharsets.UTF_8));
        }
        if (!had.equals(nodes) || h.getInt(24) != blockSize || h.getLong(32) != blocks)
        {
            throw new IOException(path + ": made for nodes " + had + ", block size " + h.getInt(24) + ", " + h.getLong(32)
                + " blocks; the volume now has nodes " + nodes + ", block size " + blockSize + ", " + blocks + " blocks");
        }
    }

    public int slots()
    {
        return slots;
    }

    public long blocks()
    {
        return blocks;
    }

    /** Node names in slot order. */
    public List<String> nodes()
    {
        return nodes;
    }

    /** Copies block {@code block}'s vector into {@code into} (length {@link #slots}); returns its stamp. */
    public long read(final long block, final int[] into)
    {
        final ByteBuffer w = window(block);
        final int at = indexInWindow(block);
        for (int i = 0; i < slots; i++)
        {
            into[i] = w.getInt(at + 4 * i);
        }
        return w.getLong(at + 4 * slots);
    }

    /** The stamp of the version block {@code block} holds (0: never written in two-way mode). */
    public long stamp(final long block)
    {
        return window(block).getLong(indexInWindow(block) + 4 * slots);
    }

    /** Sets block {@code block}'s vector and stamp (an applied remote version, or a resolved conflict). */
    public void write(final long block, final int[] vector, final long stamp)
    {
        final ByteBuffer w = window(block);
        final int at = indexInWindow(block);
        for (int i = 0; i < slots; i++)
        {
            w.putInt(at + 4 * i, vector[i]);
        }
        w.putLong(at + 4 * slots, stamp);
    }

    /** A local write by node {@code slot}: its counter goes up by one and the block takes {@code stamp}. */
    public void bump(final long block, final int slot, final long stamp)
    {
        final ByteBuffer w = window(block);
        final int at = indexInWindow(block);
        w.putInt(at + 4 * slot, w.getInt(at + 4 * slot) + 1);
        w.putLong(at + 4 * slots, stamp);
    }

    /** The highest clock stamp persisted (0 in a new file): a restarted clock starts above it. */
    public synchronized long highStamp()
    {
        long best = 0;
        for (int r = 0; r < 2; r++)
        {
            final long stamp = clock.getLong(16 * r);
            final long seq = clock.getInt(16 * r + 8) & 0xffffffffL;
            if (clock.getInt(16 * r + 12) == check(stamp, seq) && Long.compareUnsigned(stamp, best) > 0)
            {
                best = stamp;
            }
        }
        return best;
    }

    /** Persists {@code stamp} as the clock's floor (into the record not holding the newest one). */
    public synchronized void persistHighStamp(final long stamp)
    {
        final int r = (int)(++clockSequence & 1);
        clock.putLong(16 * r, stamp).putInt(16 * r + 8, (int)clockSequence).putInt(16 * r + 12, check(stamp, clockSequence));
        clock.force();
    }

    private static int check(final long stamp, final long seq)
    {
        final CRC32C crc = new CRC32C();
        final ByteBuffer b = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putLong(stamp).putInt((int)seq);
        crc.update(b.array());
        return (int)crc.getValue() | 1; // never 0, so an all-zero record is never valid
    }

    /** Forces every entry to disk. */
    public void force()
    {
        for (final MappedByteBuffer w : windows)
        {
            w.force();
        }
    }

    private ByteBuffer window(final long block)
    {
        if (block < 0 || block >= blocks)
        {
            throw new IndexOutOfBoundsException("block " + block + " outside 0-" + (blocks - 1) + " of " + path);
        }
        return windows[(int)(block / entriesPerWindow)];
    }

    private int indexInWindow(final long block)
    {
        return (int)(block % entriesPerWindow) * entryBytes;
    }

    @Override
    public void close() throws IOException
    {
        force();
        channel.close();
    }
}
