package io.doppel.watch;

import io.doppel.log.Log;
import io.doppel.pipeline.BlockHash;
import io.doppel.storage.ZeroBlocks;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * The hash of every block of a watched volume as it was last shipped to the standby, in a memory-mapped
 * file beside the volume's metadata ({@code <data-dir>/<volume>.watch}): 8 bytes per block, off the heap,
 * so a 1 TiB image at 4 KiB blocks costs 2 GiB of page cache, not of Java heap.
 *
 * <p>Why the sender writes it, not the scanner: the hash is taken from the very copy that went into the
 * frame, so an entry always names bytes the standby was sent. A scan that finds the file equal to every
 * entry therefore proves the standby was sent exactly the file's current contents.
 *
 * <p>An entry of 0 means "not known to have been shipped": such a block counts as changed. A lost,
 * stale or reset file can therefore only cause blocks to be sent again, never one to be missed — which is
 * why the entries carry no checksum of their own, and a header that does not match (another block size
 * or volume size, a bad checksum) simply starts over with every entry unknown. Layout: docs/metadata.md.
 */
public final class WatchHashes implements Closeable
{
    public static final byte[] MAGIC = "DOPLWTCH".getBytes(StandardCharsets.US_ASCII);
    public static final int FORMAT_VERSION = 1;
    public static final int HEADER_BYTES = 4096;
    /** The header fields covered by the checksum: magic, version, block size, volume size, block count. */
    static final int HEADER_CHECKED_BYTES = 32;
    /** Entries per mapped window (1 GiB of entries). */
    private static final int WINDOW_SHIFT = 27;
    private static final long WINDOW_MASK = (1L << WINDOW_SHIFT) - 1;
    /** What an all-zero block (a hole included) is recorded as; never the hash of a data block. */
    public static final long ZERO_BLOCK = 0x5A45524F424C4B21L;
    public static final long UNKNOWN = 0;

    private final Path path;
    private final FileChannel channel;
    private final MappedByteBuffer header;
    private final MappedByteBuffer[] windows;
    private final long blockCount;

    private WatchHashes(final Path path, final FileChannel channel, final long blockCount) throws IOException
    {
        this.path = path;
        this.channel = channel;
        this.blockCount = blockCount;
        this.header = channel.map(FileChannel.MapMode.READ_WRITE, 0, HEADER_BYTES);
        final int count = (int)((blockCount + WINDOW_MASK) >>> WINDOW_SHIFT);
        this.windows = new MappedByteBuffer[count];
        for (int i = 0; i < count; i++)
        {
            final long first = (long)i << WINDOW_SHIFT;
            final long entries = Math.min(1L << WINDOW_SHIFT, blockCount - first);
            windows[i] = channel.map(FileChannel.MapMode.READ_WRITE, HEADER_BYTES + first * 8, entries * 8);
            windows[i].order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    /**
     * Opens the file, or creates it (sparse: every entry unknown). A file written for another volume
     * size or block size, or with a bad header, is reset with a log line saying so.
     */
    public static WatchHashes openOrCreate(final Path path, final long volumeSize, final int blockSize,
        final String component) throws IOException
    {
        final long blockCount = (volumeSize + blockSize - 1) / blockSize;
        final FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ,
            StandardOpenOption.WRITE);
        try
        {
            final ByteBuffer wanted = header(volumeSize, blockSize, blockCount);
            final ByteBuffer found = ByteBuffer.allocate(HEADER_CHECKED_BYTES + 4);
            channel.read(found, 0);
            found.flip();
            if (!found.equals(wanted))
            {
                if (channel.size() > 0)
                {
                    Log.info(component, path + ": hashes were written for another volume size or block size, or"
                        + " the header is damaged; starting over (every block counts as changed once)");
                }
                channel.truncate(0);
                channel.write(ByteBuffer.allocate(1), HEADER_BYTES + blockCount * 8 - 1); // sparse: all unknown
                channel.write(wanted.duplicate(), 0);
                channel.force(true);
            }
            return new WatchHashes(path, channel, blockCount);
        }
        catch (final IOException | RuntimeException e)
        {
            channel.close();
            throw new IOException(path + ": cannot open watch hashes: " + e.getMessage(), e);
        }
    }

    private static ByteBuffer header(final long volumeSize, final int blockSize, final long blockCount)
    {
        final ByteBuffer b = ByteBuffer.allocate(HEADER_CHECKED_BYTES + 4).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).putInt(FORMAT_VERSION).putInt(blockSize).putLong(volumeSize).putLong(blockCount);
        final CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, HEADER_CHECKED_BYTES);
        b.putInt((int)crc.getValue());
        b.flip();
        return b;
    }

    /**
     * The value recorded for a block's contents: {@link #ZERO_BLOCK} for all zeros, else its XXH3-64
     * (never 0 or {@link #ZERO_BLOCK}). Reads in place; allocates nothing.
     */
    public static long hashOf(final ByteBuffer buffer, final int index, final int length)
    {
        if (ZeroBlocks.isZero(buffer, index, length))
        {
            return ZERO_BLOCK;
        }
        final long h = BlockHash.of64(buffer, index, length);
        return h == UNKNOWN || h == ZERO_BLOCK ? h ^ 1 : h;
    }

    public long blockCount()
    {
        return blockCount;
    }

    public long get(final long block)
    {
        return windows[(int)(block >>> WINDOW_SHIFT)].getLong((int)((block & WINDOW_MASK) << 3));
    }

    public void put(final long block, final long hash)
    {
        windows[(int)(block >>> WINDOW_SHIFT)].putLong((int)((block & WINDOW_MASK) << 3), hash);
    }

    public Path path()
    {
        return path;
    }

    /** Writes the entries back to the file (on close; a crash in between only costs re-sent blocks). */
    public void flush()
    {
        for (final MappedByteBuffer w : windows)
        {
            w.force();
        }
    }

    @Override
    public void close() throws IOException
    {
        try
        {
            flush();
        }
        finally
        {
            channel.close();
        }
    }
}
