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
import java.util.UUID;
import java.util.zip.CRC32C;

/**
 * A volume's own state, in a small memory-mapped file next to (never inside) the image:
 * a checksummed header (identity: uuid, size, block size) followed by the dirty bitmap.
 * Layout in {@code docs/metadata.md}. The header is rewritten only on the control plane;
 * the bitmap is written in place by {@link DirtyMap}.
 */
public final class MetadataFile implements Closeable
{
    public static final byte[] MAGIC = "DOPLMETA".getBytes(StandardCharsets.US_ASCII);
    public static final int FORMAT_VERSION = 1;
    public static final int HEADER_BYTES = 4096;

    static final int MAGIC_OFFSET = 0;
    static final int VERSION_OFFSET = 8;
    static final int HEADER_LENGTH_OFFSET = 12;
    static final int UUID_OFFSET = 16;
    static final int SIZE_OFFSET = 32;
    static final int BLOCK_SIZE_OFFSET = 40;
    static final int FLAGS_OFFSET = 44;
    static final int BITMAP_OFFSET_OFFSET = 48;
    static final int BITMAP_LENGTH_OFFSET = 56;
    static final int CHECKSUM_OFFSET = HEADER_BYTES - 4;

    private final Path path;
    private final FileChannel channel;
    private final MappedByteBuffer map;
    private final UUID uuid;
    private final DirtyMap dirtyMap;

    private MetadataFile(final Path path, final FileChannel channel, final MappedByteBuffer map, final UUID uuid,
        final DirtyMap dirtyMap)
    {
        this.path = path;
        this.channel = channel;
        this.map = map;
        this.uuid = uuid;
        this.dirtyMap = dirtyMap;
    }

    /**
     * Opens the metadata at {@code path}, creating it for a volume of {@code volumeSize} bytes and
     * {@code blockSize}-byte blocks when absent. An existing file must carry the same identity; a
     * mismatch is refused rather than silently reset, because the bitmap would no longer describe
     * the image.
     */
    public static MetadataFile openOrCreate(final Path path, final long volumeSize, final int blockSize)
        throws IOException
    {
        final long blocks = (volumeSize + blockSize - 1) / blockSize;
        final long bitmapBytes = roundUp(DirtyMap.bytesFor(blocks), HEADER_BYTES);
        final long total = HEADER_BYTES + bitmapBytes;
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
            final UUID uuid;
            if (exists)
            {
                final ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
                channel.read(header, 0);
                uuid = validate(path, header.flip(), volumeSize, blockSize, bitmapBytes);
                if (channel.size() < total)
                {
                    throw new IOException(path + ": truncated metadata, " + channel.size() + " of " + total + " bytes");
                }
            }
            else
            {
                uuid = UUID.randomUUID();
                channel.write(ByteBuffer.wrap(new byte[1]), total - 1);
                channel.write(header(uuid, volumeSize, blockSize, bitmapBytes), 0);
                channel.force(true);
                // the new file's name must survive a crash too
                try (FileChannel dir = FileChannel.open(path.toAbsolutePath().getParent(), StandardOpenOption.READ))
                {
                    dir.force(true);
                }
            }
            final MappedByteBuffer map = channel.map(FileChannel.MapMode.READ_WRITE, 0, total);
            final DirtyMap dirtyMap = new DirtyMap(map, HEADER_BYTES, blocks, blockSize);
            return new MetadataFile(path, channel, map, uuid, dirtyMap);
        }
        catch (final IOException | RuntimeException e)
        {
            channel.close();
            throw e;
        }
    }

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
        b.putInt(FLAGS_OFFSET, 0);
        b.putLong(BITMAP_OFFSET_OFFSET, HEADER_BYTES);
        b.putLong(BITMAP_LENGTH_OFFSET, bitmapBytes);
        b.putInt(CHECKSUM_OFFSET, checksum(b));
        return b;
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
                + FORMAT_VERSION + ".." + FORMAT_VERSION);
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
        if (b.getLong(BITMAP_LENGTH_OFFSET) != bitmapBytes || b.getLong(BITMAP_OFFSET_OFFSET) != HEADER_BYTES)
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

    /** Forces the bitmap to stable storage. */
    public void flush()
    {
        map.force();
    }

    @Override
    public void close() throws IOException
    {
        map.force();
        channel.close();
    }
}
