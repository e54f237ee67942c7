package io.doppel.storage;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Long writes from direct buffers go through pwrite, the others through the mapping: both land in the
 * file at the right offset, across a window boundary, and read back through the mapping at once.
 */
class VolumeWriteTest
{
    private static final long WINDOW = 2L << 20;

    @TempDir
    Path dir;

    @Test
    void directAndHeapWritesLandInTheFileAcrossWindows() throws Exception
    {
        final Path image = dir.resolve("v.img");
        final byte[] expected = new byte[(int)(3 * WINDOW)];
        final SplittableRandom random = new SplittableRandom(7);
        try (Volume v = Volume.open(image, expected.length, WINDOW))
        {
            assertThat(v.writesThroughPwrite()).as("libc's pwrite bound through JNA").isTrue();
            for (int i = 0; i < 200; i++)
            {
                final int length = 1 + random.nextInt(300_000); // both sides of PWRITE_MIN_BYTES
                final long offset = random.nextLong(expected.length - length + 1);
                final byte[] data = new byte[length];
                random.nextBytes(data);
                final ByteBuffer src = i % 2 == 0 ? ByteBuffer.allocateDirect(length + 10) : ByteBuffer.allocate(length + 10);
                src.position(10);
                src.put(data).position(10);
                v.write(offset, src);
                assertThat(src.remaining()).isZero();
                System.arraycopy(data, 0, expected, (int)offset, length);
            }
            // Straddling the first window boundary, from a direct buffer.
            final byte[] edge = new byte[8192];
            Arrays.fill(edge, (byte)0x5a);
            v.write(WINDOW - 4096, ByteBuffer.allocateDirect(edge.length).put(edge).flip());
            System.arraycopy(edge, 0, expected, (int)(WINDOW - 4096), edge.length);

            final ByteBuffer back = ByteBuffer.allocate(expected.length);
            v.read(0, back);
            assertThat(Arrays.mismatch(back.array(), expected)).as("read through the mapping").isEqualTo(-1);
            v.flush();
        }
        assertThat(Arrays.mismatch(Files.readAllBytes(image), expected)).as("the file").isEqualTo(-1);
    }
}
