package io.doppel.storage;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class VolumeTest
{
    private static final long MiB = 1L << 20;
    private static final long GiB = 1L << 30;

    @TempDir
    Path dir;

    // ------------------------------------------------------------------ window boundaries

    @Test
    void readsAndWritesAcrossSmallWindowsMatchAModelAndTheFile() throws IOException
    {
        final Path file = dir.resolve("small.img");
        final int size = (int)(4 * MiB + 12345); // partial last window
        final byte[] model = new byte[size];
        final SplittableRandom random = new SplittableRandom(42);
        try (Volume volume = Volume.open(file, size, MiB))
        {
            assertThat(volume.size()).isEqualTo(size);
            assertThat(volume.isBlockDevice()).isFalse();
            assertThat(volume.path()).isEqualTo(file);

            // explicit boundary cases: ends at, starts at, straddles one, straddles three windows, the tail
            final long[][] ranges = {
                {MiB - 100, 100}, {MiB, 100}, {MiB - 7, 300}, {2 * MiB - 1, 2},
                {MiB - 13, 2 * MiB + 26}, {4 * MiB - 5, 12345 + 5}, {size - 1, 1}, {0, 1},
            };
            for (final long[] r : ranges)
            {
                writeRandom(volume, model, random, r[0], (int)r[1], random.nextInt(64));
            }
            // plus random ranges, many of which cross a window
            for (int i = 0; i < 200; i++)
            {
                final int length = 1 + random.nextInt((int)(MiB + MiB / 2));
                final long offset = random.nextLong(size - length + 1);
                writeRandom(volume, model, random, offset, length, random.nextInt(64));
            }

            // whole volume back through the mapping
            final ByteBuffer all = ByteBuffer.allocate(size);
            volume.read(0, all);
            assertThat(all.position()).isEqualTo(size);
            assertThat(Arrays.mismatch(all.array(), model)).isEqualTo(-1);

            // random cross-window reads into a buffer with a non-zero position (direct and heap)
            for (int i = 0; i < 100; i++)
            {
                final int length = 1 + random.nextInt((int)(2 * MiB));
                final long offset = random.nextLong(size - length + 1);
                final int pad = random.nextInt(32);
                final ByteBuffer dst = i % 2 == 0 ? ByteBuffer.allocateDirect(pad + length + 5)
                    : ByteBuffer.allocate(pad + length + 5);
                dst.position(pad).limit(pad + length);
                volume.read(offset, dst);
                assertThat(dst.position()).isEqualTo(pad + length);
                assertThat(dst.limit()).isEqualTo(pad + length);
                final byte[] got = new byte[length];
                dst.get(pad, got);
                assertThat(Arrays.mismatch(got, 0, length, model, (int)offset, (int)offset + length))
                    .as("read at %d length %d", offset, length).isEqualTo(-1);
            }

            volume.flush();

            // the bytes reached the file, as plain I/O sees them
            final byte[] onDisk = readFile(file, size);
            assertThat(Arrays.mismatch(onDisk, model)).isEqualTo(-1);
        }
        assertThat(Files.size(file)).isEqualTo(size);

        // reopening without a size keeps size and contents
        try (Volume again = Volume.open(file, 0, MiB))
        {
            assertThat(again.size()).isEqualTo(size);
            final ByteBuffer all = ByteBuffer.allocate(size);
            again.read(0, all);
            assertThat(Arrays.mismatch(all.array(), model)).isEqualTo(-1);
        }
    }

    @Test
    void windowAccessorsPointIntoTheRightWindow() throws IOException
    {
        try (Volume volume = Volume.open(dir.resolve("w.img"), 3 * MiB, MiB))
        {
            final long offset = 2 * MiB + 4096;
            assertThat(volume.indexInWindow(offset)).isEqualTo(4096);
            volume.windowFor(offset).put(volume.indexInWindow(offset), (byte)0x5A);
            volume.touched(offset);
            final ByteBuffer one = ByteBuffer.allocate(1);
            volume.read(offset, one);
            assertThat(one.get(0)).isEqualTo((byte)0x5A);
            volume.flush();
            assertThat(readFile(volume.path(), (int)(3 * MiB))[(int)offset]).isEqualTo((byte)0x5A);
        }
    }

    @Test
    void badWindowSizesAreRefused()
    {
        for (final long window : new long[] {MiB / 2, 3 * MiB, 2 * GiB})
        {
            assertThatThrownBy(() -> Volume.open(dir.resolve("x.img"), 4 * MiB, window))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("window=" + window);
        }
    }

    // ------------------------------------------------------------------ range checks

    @Test
    void outOfRangeAccessThrowsIndexOutOfBoundsNamingOffsetAndLength() throws IOException
    {
        final long size = 2 * MiB;
        try (Volume volume = Volume.open(dir.resolve("r.img"), size, MiB))
        {
            assertThatThrownBy(() -> volume.read(size - 10, ByteBuffer.allocate(11)))
                .isInstanceOf(IndexOutOfBoundsException.class)
                .hasMessageContaining("offset=" + (size - 10))
                .hasMessageContaining("length=11")
                .hasMessageContaining(String.valueOf(size));
            assertThatThrownBy(() -> volume.write(-1, ByteBuffer.allocate(1)))
                .isInstanceOf(IndexOutOfBoundsException.class)
                .hasMessageContaining("offset=-1")
                .hasMessageContaining("length=1");
            assertThatThrownBy(() -> volume.write(size, ByteBuffer.allocate(1)))
                .isInstanceOf(IndexOutOfBoundsException.class)
                .hasMessageContaining("offset=" + size);
            assertThatThrownBy(() -> volume.read(Long.MAX_VALUE, ByteBuffer.allocate(2)))
                .isInstanceOf(IndexOutOfBoundsException.class)
                .hasMessageContaining("offset=" + Long.MAX_VALUE);
            assertThatThrownBy(() -> volume.writeZeros(size - 1, 2))
                .isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("length=2");
            assertThatThrownBy(() -> volume.isZero(0, size + 1))
                .isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("length=" + (size + 1));
            assertThatThrownBy(() -> volume.zeroRange(0, -1))
                .isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("length=-1");

            // a refused write changes nothing and leaves the source position alone
            final ByteBuffer src = ByteBuffer.wrap(new byte[] {1, 2, 3});
            assertThatThrownBy(() -> volume.write(size - 2, src)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThat(src.position()).isZero();
            assertThat(volume.isZero(0, size)).isTrue();

            // the exact end is fine, an empty access at the end too
            volume.write(size - 3, ByteBuffer.wrap(new byte[] {1, 2, 3}));
            volume.read(size, ByteBuffer.allocate(0));
            assertThat(volume.isZero(size, 0)).isTrue();
        }
    }

    // ------------------------------------------------------------------ beyond 4 GiB

    @Test
    void sparseImageLargerThan4GiB() throws IOException, InterruptedException
    {
        final Path file = dir.resolve("big.img");
        final long size = 5 * GiB;
        final SplittableRandom random = new SplittableRandom(7);
        final long[][] ranges = {
            {0, 4096},
            {GiB - 2048, 4096},            // across the 1 GiB window boundary
            {2 * GiB - 1, 2},              // across 2 GiB (signed int overflow territory)
            {4 * GiB - 3000, 8192},        // across 4 GiB (unsigned int overflow territory)
            {4 * GiB + 10_123, 77},
            {size - 4096, 4096},           // the very end
        };
        final byte[][] data = new byte[ranges.length][];
        try (Volume volume = Volume.open(file, size))
        {
            assertThat(volume.size()).isEqualTo(size);
            assertThat(volume.isZero(size - MiB, MiB)).isTrue();
            for (int i = 0; i < ranges.length; i++)
            {
                data[i] = new byte[(int)ranges[i][1]];
                random.nextBytes(data[i]);
                data[i][0] |= 1; // never zero at the edges, so a misplaced write cannot hide
                data[i][data[i].length - 1] |= 1;
                volume.write(ranges[i][0], ByteBuffer.wrap(data[i]));
            }
            for (int i = 0; i < ranges.length; i++)
            {
                final ByteBuffer back = ByteBuffer.allocateDirect(data[i].length);
                volume.read(ranges[i][0], back);
                final byte[] got = new byte[data[i].length];
                back.flip().get(got);
                assertThat(Arrays.mismatch(got, data[i])).as("first wrong byte of range %d at %d", i, ranges[i][0]).isEqualTo(-1);
                // the bytes just around each range are still zero
                if (ranges[i][0] > 0)
                {
                    assertThat(volume.isZero(ranges[i][0] - 1, 1)).isTrue();
                }
                if (ranges[i][0] + ranges[i][1] < size)
                {
                    assertThat(volume.isZero(ranges[i][0] + ranges[i][1], 1)).isTrue();
                }
            }
            assertThat(volume.isZero(3 * GiB, 4096)).isTrue();
            assertThat(volume.isZero(size - 4096, 4096)).isFalse();
            volume.flush();
        }
        assertThat(Files.size(file)).isEqualTo(size);

        // plain file I/O agrees, including above 4 GiB
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ))
        {
            for (int i = 0; i < ranges.length; i++)
            {
                final ByteBuffer b = ByteBuffer.allocate(data[i].length);
                ch.read(b, ranges[i][0]);
                assertThat(Arrays.mismatch(b.array(), data[i])).as("first wrong byte of file range %d", i).isEqualTo(-1);
            }
        }

        // reopen (no size given) and read the end again
        try (Volume again = Volume.open(file, 0))
        {
            assertThat(again.size()).isEqualTo(size);
            final ByteBuffer tail = ByteBuffer.allocate(4096);
            again.read(size - 4096, tail);
            assertThat(Arrays.mismatch(tail.array(), data[data.length - 1])).isEqualTo(-1);
        }

        final long allocatedKiB = duKiB(file);
        assumeTrue(allocatedKiB >= 0, "du not available");
        assertThat(allocatedKiB).as("allocated KiB of a 5 GiB sparse image with a few KiB written")
            .isLessThan(16 * 1024);
    }

    @Test
    void openingGrowsButNeverShrinks() throws IOException
    {
        final Path file = dir.resolve("grow.img");
        try (Volume v = Volume.open(file, 2 * MiB, MiB))
        {
            v.write(2 * MiB - 1, ByteBuffer.wrap(new byte[] {9}));
        }
        try (Volume v = Volume.open(file, 3 * MiB + 1, MiB))
        {
            assertThat(v.size()).isEqualTo(3 * MiB + 1);
            final ByteBuffer b = ByteBuffer.allocate(1);
            v.read(2 * MiB - 1, b);
            assertThat(b.get(0)).isEqualTo((byte)9);
        }
        try (Volume v = Volume.open(file, MiB, MiB))
        {
            assertThat(v.size()).isEqualTo(3 * MiB + 1);
        }
        assertThat(Files.size(file)).isEqualTo(3 * MiB + 1);
    }

    // ------------------------------------------------------------------ zeros

    @Test
    void isZeroWriteZerosAndZeroRange() throws IOException, InterruptedException
    {
        final Path file = dir.resolve("z.img");
        final int size = (int)(8 * MiB);
        final byte[] model = new byte[size];
        final SplittableRandom random = new SplittableRandom(3);
        try (Volume volume = Volume.open(file, size, MiB))
        {
            assertThat(volume.isZero(0, size)).isTrue();

            // a single non-zero byte anywhere is seen, including in the 1..31 byte tail of the check
            for (final long at : new long[] {0, 31, 32, MiB - 1, MiB, size - 1})
            {
                volume.write(at, ByteBuffer.wrap(new byte[] {1}));
                assertThat(volume.isZero(0, size)).as("byte at %d", at).isFalse();
                assertThat(volume.isZero(at, 1)).isFalse();
                if (at > 0)
                {
                    assertThat(volume.isZero(0, at)).isTrue();
                }
                volume.write(at, ByteBuffer.wrap(new byte[] {0}));
            }
            assertThat(volume.isZero(0, size)).isTrue();

            writeRandom(volume, model, random, 0, size, 0);
            makeNonZero(volume, model);
            assertThat(volume.isZero(0, size)).isFalse();

            // writeZeros longer than the 1 MiB zero buffer, across windows, unaligned
            final long zOff = MiB / 2 + 3;
            final long zLen = 2 * MiB + MiB / 2 + 5;
            volume.writeZeros(zOff, zLen);
            Arrays.fill(model, (int)zOff, (int)(zOff + zLen), (byte)0);
            assertThat(volume.isZero(zOff, zLen)).isTrue();
            assertThat(volume.isZero(zOff - 1, 1)).isFalse();
            assertThat(volume.isZero(zOff + zLen, 1)).isFalse();

            // zeroRange: unaligned, across a window boundary; neighbours keep their bytes
            final long rOff = 4 * MiB - 5000 + 1;
            final long rLen = 2 * MiB + 9999;
            volume.zeroRange(rOff, rLen);
            Arrays.fill(model, (int)rOff, (int)(rOff + rLen), (byte)0);
            assertThat(volume.isZero(rOff, rLen)).isTrue();
            assertThat(volume.isZero(rOff - 1, 1)).isFalse();
            assertThat(volume.isZero(rOff + rLen, 1)).isFalse();

            // zeroRange of an already zero range is a no-op
            volume.zeroRange(rOff, rLen);
            assertThat(volume.isZero(rOff, rLen)).isTrue();

            final ByteBuffer all = ByteBuffer.allocate(size);
            volume.read(0, all);
            assertThat(Arrays.mismatch(all.array(), model)).isEqualTo(-1);
            volume.flush();
        }
        assertThat(Arrays.mismatch(readFile(file, size), model)).isEqualTo(-1);
    }

    @Test
    void zeroRangePunchesHolesInImageFiles() throws IOException, InterruptedException
    {
        assumeTrue(NativeIo.available(), "JNA could not bind libc");
        final Path file = dir.resolve("hole.img");
        final int size = (int)(8 * MiB);
        try (Volume volume = Volume.open(file, size, MiB))
        {
            final byte[] model = new byte[size];
            writeRandom(volume, model, new SplittableRandom(11), 0, size, 0);
            makeNonZero(volume, model);
            volume.flush();
            final long before = duKiB(file);
            assumeTrue(before >= 0, "du not available");
            assertThat(before).isGreaterThanOrEqualTo(8 * 1024 - 64);

            volume.zeroRange(MiB, 6 * MiB);
            assertThat(volume.isZero(MiB, 6 * MiB)).isTrue();
            assertThat(volume.isZero(MiB - 1, 1)).isFalse();
            assertThat(volume.isZero(7 * MiB, 1)).isFalse();
            volume.flush();
            final long after = duKiB(file);
            assumeTrue(after < before, "file system does not punch holes");
            assertThat(after).isLessThanOrEqualTo(before - 5 * 1024);
            // plain file I/O sees the zeros too
            final byte[] onDisk = readFile(file, size);
            for (int i = (int)MiB; i < 7 * MiB; i++)
            {
                if (onDisk[i] != 0)
                {
                    throw new AssertionError("byte " + i + " is " + onDisk[i] + " after zeroRange");
                }
            }
            assertThat(Arrays.mismatch(onDisk, 0, (int)MiB, model, 0, (int)MiB)).isEqualTo(-1);
        }
    }

    // ------------------------------------------------------------------ opening

    @Test
    void missingImageWithoutSizeGivesAClearIOException()
    {
        final Path file = dir.resolve("absent.img");
        assertThatThrownBy(() -> Volume.open(file, 0))
            .isInstanceOf(IOException.class)
            .hasMessageContaining(file.toString())
            .hasMessageContaining("no such image")
            .hasMessageContaining("no size given");
        assertThat(Files.exists(file)).isFalse();
    }

    @Test
    void emptyExistingImageWithoutSizeIsRefused() throws IOException
    {
        final Path file = Files.createFile(dir.resolve("empty.img"));
        assertThatThrownBy(() -> Volume.open(file, 0, MiB))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("size 0");
    }

    // ------------------------------------------------------------------ helpers

    private static void writeRandom(final Volume volume, final byte[] model, final SplittableRandom random,
        final long offset, final int length, final int srcPad)
    {
        final byte[] data = new byte[length];
        random.nextBytes(data);
        final ByteBuffer src;
        if (random.nextBoolean())
        {
            src = ByteBuffer.allocateDirect(srcPad + length);
            src.position(srcPad);
            src.put(data);
            src.position(srcPad);
        }
        else
        {
            final byte[] padded = new byte[srcPad + length];
            System.arraycopy(data, 0, padded, srcPad, length);
            src = ByteBuffer.wrap(padded, srcPad, length);
        }
        volume.write(offset, src);
        assertThat(src.position()).isEqualTo(srcPad + length);
        assertThat(src.hasRemaining()).isFalse();
        System.arraycopy(data, 0, model, (int)offset, length);
    }

    /** Replaces every zero byte with 1 so zero checks on random data are exact. */
    private static void makeNonZero(final Volume volume, final byte[] model)
    {
        for (int i = 0; i < model.length; i++)
        {
            if (model[i] == 0)
            {
                model[i] = 1;
                volume.write(i, ByteBuffer.wrap(new byte[] {1}));
            }
        }
    }

    private static byte[] readFile(final Path file, final int size) throws IOException
    {
        final ByteBuffer b = ByteBuffer.allocate(size);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ))
        {
            while (b.hasRemaining())
            {
                if (ch.read(b, b.position()) < 0)
                {
                    break;
                }
            }
        }
        assertThat(b.position()).isEqualTo(size);
        return b.array();
    }

    /** Allocated size in KiB as {@code du -k} reports it, or -1 when du cannot be run. */
    private static long duKiB(final Path file) throws InterruptedException
    {
        try
        {
            final Process p = new ProcessBuilder("du", "-k", file.toString()).redirectErrorStream(true).start();
            final String out;
            try (InputStream in = p.getInputStream())
            {
                out = new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
            }
            if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0)
            {
                return -1;
            }
            return Long.parseLong(out.split("\\s+")[0]);
        }
        catch (final IOException | NumberFormatException e)
        {
            return -1;
        }
    }
}
