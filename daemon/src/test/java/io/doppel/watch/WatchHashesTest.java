package io.doppel.watch;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

class WatchHashesTest
{
    @TempDir
    Path dir;

    @Test
    void entriesSurviveAReopenAndAnotherGeometryStartsOver() throws Exception
    {
        final Path file = dir.resolve("vm1.watch");
        final long size = (3L << 20) + 1000; // a short last block
        try (WatchHashes h = WatchHashes.openOrCreate(file, size, 4096, "test"))
        {
            assertThat(h.blockCount()).isEqualTo(769);
            assertThat(h.get(0)).isEqualTo(WatchHashes.UNKNOWN);
            h.put(0, 42);
            h.put(768, WatchHashes.ZERO_BLOCK);
        }
        assertThat(Files.size(file)).isEqualTo(WatchHashes.HEADER_BYTES + 769 * 8);
        try (WatchHashes h = WatchHashes.openOrCreate(file, size, 4096, "test"))
        {
            assertThat(h.get(0)).isEqualTo(42);
            assertThat(h.get(768)).isEqualTo(WatchHashes.ZERO_BLOCK);
        }
        try (WatchHashes h = WatchHashes.openOrCreate(file, size, 8192, "test"))
        {
            assertThat(h.get(0)).as("another block size: every entry unknown").isEqualTo(WatchHashes.UNKNOWN);
            h.put(1, 7);
        }
        // A damaged header (one bit of the volume size) starts over too.
        final byte[] bytes = Files.readAllBytes(file);
        bytes[16] ^= 1;
        Files.write(file, bytes);
        try (WatchHashes h = WatchHashes.openOrCreate(file, size, 8192, "test"))
        {
            assertThat(h.get(1)).isEqualTo(WatchHashes.UNKNOWN);
        }
    }

    @Test
    void zeroBlocksAndDataBlocksHashApartAndNeverToUnknown()
    {
        final ByteBuffer b = ByteBuffer.allocateDirect(8192).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(WatchHashes.hashOf(b, 0, 4096)).isEqualTo(WatchHashes.ZERO_BLOCK);
        b.put(100, (byte)1);
        final long one = WatchHashes.hashOf(b, 0, 4096);
        assertThat(one).isNotIn(WatchHashes.ZERO_BLOCK, WatchHashes.UNKNOWN);
        b.put(100, (byte)2);
        assertThat(WatchHashes.hashOf(b, 0, 4096)).isNotEqualTo(one);
        // the same bytes in a heap buffer of the other byte order hash the same
        final ByteBuffer heap = ByteBuffer.allocate(4096).order(ByteOrder.BIG_ENDIAN);
        heap.put(100, (byte)2);
        assertThat(WatchHashes.hashOf(heap, 0, 4096)).isEqualTo(WatchHashes.hashOf(b, 0, 4096));
    }
}
