package io.doppel.twoway;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * Where the losing version of every two-way conflict goes before the winner overwrites it: the block's
 * offset, both vectors, both stamps and the loser's bytes, forced to disk first — the same rule as a
 * split brain's saved blocks: nothing is overwritten unsaved. Bounded: {@code <volume>.conflicts} is
 * rotated to {@code .1} … {@code .N} when it passes a size, and the oldest file is dropped. Record layout
 * in {@code docs/metadata.md}.
 */
public final class ConflictLog implements Closeable
{
    static final int MAGIC = 0x4C46_4344; // "DCFL" little-endian
    static final short VERSION = 1;
    /** magic, version, slots, record length, offset, length, winner stamp, loser stamp, winner slot + pad. */
    static final int FIXED_BYTES = 4 + 2 + 2 + 4 + 8 + 4 + 8 + 8 + 4;

    private final Path path;
    private final long maxFileBytes;
    private final int keepFiles;
    private FileChannel channel;
    private final CRC32C crc = new CRC32C();

    /** One logged conflict. */
    public record Conflict(long offset, int length, long winnerStamp, long loserStamp, int winnerSlot,
        int[] winnerVector, int[] loserVector, byte[] loserBytes)
    {
    }

    private ConflictLog(final Path path, final long maxFileBytes, final int keepFiles) throws IOException
    {
        this.path = path;
        this.maxFileBytes = maxFileBytes;
        this.keepFiles = keepFiles;
        this.channel = open(path);
    }

    /** Opens (appends to) {@code path}, rotating at {@code maxFileBytes} and keeping {@code keepFiles} old files. */
    public static ConflictLog open(final Path path, final long maxFileBytes, final int keepFiles) throws IOException
    {
        return new ConflictLog(path, maxFileBytes, keepFiles);
    }

    private static FileChannel open(final Path path) throws IOException
    {
        return FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
    }

    /** Appends a conflict and forces it to disk before returning; the loser's bytes are {@code loser}'s remaining. */
    public synchronized void append(final long offset, final long winnerStamp, final long loserStamp,
        final int[] winnerVector, final int[] loserVector, final ByteBuffer loser) throws IOException
    {
        final int slots = winnerVector.length;
        final int length = loser.remaining();
        final int recordBytes = FIXED_BYTES + 8 * slots + length + 4;
        final ByteBuffer r = ByteBuffer.allocate(recordBytes).order(ByteOrder.LITTLE_ENDIAN);
        r.putInt(MAGIC).putShort(VERSION).putShort((short)slots).putInt(recordBytes).putLong(offset).putInt(length)
            .putLong(winnerStamp).putLong(loserStamp).putInt(HybridClock.slot(winnerStamp));
        for (final int v : winnerVector)
        {
            r.putInt(v);
        }
        for (final int v : loserVector)
        {
            r.putInt(v);
        }
        r.put(loser.duplicate());
        crc.reset();
        crc.update(r.array(), 0, recordBytes - 4);
        r.putInt((int)crc.getValue()).flip();
        if (channel.size() > 0 && channel.size() + recordBytes > maxFileBytes)
        {
            rotate();
        }
        while (r.hasRemaining())
        {
            channel.write(r);
        }
        channel.force(false);
    }

    private void rotate() throws IOException
    {
        channel.close();
        Files.deleteIfExists(numbered(path, keepFiles));
        for (int i = keepFiles - 1; i >= 1; i--)
        {
            if (Files.exists(numbered(path, i)))
            {
                Files.move(numbered(path, i), numbered(path, i + 1), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        Files.move(path, numbered(path, 1), StandardCopyOption.REPLACE_EXISTING);
        channel = open(path);
    }

    static Path numbered(final Path path, final int n)
    {
        return path.resolveSibling(path.getFileName() + "." + n);
    }

    /**
     * Every conflict in {@code path} and its rotated files, oldest first. A torn or damaged record (a crash
     * in the middle of an append) ends that file's list.
     */
    public static List<Conflict> read(final Path path, final int keepFiles) throws IOException
    {
        final List<Conflict> all = new ArrayList<>();
        for (int i = keepFiles; i >= 0; i--)
        {
            final Path file = i == 0 ? path : numbered(path, i);
            if (Files.exists(file))
            {
                readFile(file, all);
            }
        }
        return all;
    }

    private static void readFile(final Path file, final List<Conflict> into) throws IOException
    {
        final ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        final CRC32C crc = new CRC32C();
        while (b.remaining() >= FIXED_BYTES + 4)
        {
            final int start = b.position();
            final int recordBytes = b.getInt(start + 8);
            if (b.getInt(start) != MAGIC || b.getShort(start + 4) != VERSION || recordBytes < FIXED_BYTES + 4
                || recordBytes > b.remaining())
            {
                return;
            }
            crc.reset();
            crc.update(b.array(), start, recordBytes - 4);
            if (b.getInt(start + recordBytes - 4) != (int)crc.getValue())
            {
                return;
            }
            final int slots = b.getShort(start + 6);
            b.position(start + 12);
            final long offset = b.getLong();
            final int length = b.getInt();
            final long winnerStamp = b.getLong();
            final long loserStamp = b.getLong();
            final int winnerSlot = b.getInt();
            final int[] winner = new int[slots];
            final int[] loser = new int[slots];
            for (int i = 0; i < slots; i++)
            {
                winner[i] = b.getInt();
            }
            for (int i = 0; i < slots; i++)
            {
                loser[i] = b.getInt();
            }
            final byte[] bytes = new byte[length];
            b.get(bytes);
            b.position(start + recordBytes);
            into.add(new Conflict(offset, length, winnerStamp, loserStamp, winnerSlot, winner, loser, bytes));
        }
    }

    @Override
    public synchronized void close() throws IOException
    {
        channel.close();
    }
}
