package io.doppel.twoway;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The version-vector file survives a reopen, and refuses what is not one, or one made for another volume. */
class VersionVectorFileTest
{
    @TempDir
    Path dir;

    @Test
    void vectorsStampsAndTheClockFloorSurviveAReopen() throws IOException
    {
        final Path file = dir.resolve("vm1.versions");
        final List<String> nodes = List.of("alpha", "beta");
        try (VersionVectorFile v = VersionVectorFile.open(file, nodes, 4096, 1000))
        {
            v.bump(7, 1, 0x1234_5678L);
            v.bump(7, 1, 0x1234_5679L);
            v.write(999, new int[] {5, -1}, -2L);
            v.persistHighStamp(0x7777L);
        }
        try (VersionVectorFile v = VersionVectorFile.open(file, nodes, 4096, 1000))
        {
            final int[] vector = new int[2];
            assertThat(v.read(7, vector)).isEqualTo(0x1234_5679L);
            assertThat(vector).containsExactly(0, 2);
            assertThat(v.read(999, vector)).isEqualTo(-2L);
            assertThat(vector).containsExactly(5, -1);
            assertThat(v.read(0, vector)).isZero();
            assertThat(v.highStamp()).isEqualTo(0x7777L);
        }
        assertThatThrownBy(() -> VersionVectorFile.open(file, List.of("alpha", "gamma"), 4096, 1000))
            .hasMessageContaining("made for nodes [alpha, beta]").hasMessageContaining("[alpha, gamma]");
        assertThatThrownBy(() -> VersionVectorFile.open(file, nodes, 8192, 1000))
            .hasMessageContaining("block size 4096");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE))
        {
            ch.write(ByteBuffer.wrap(new byte[] {'X'}), 0);
        }
        assertThatThrownBy(() -> VersionVectorFile.open(file, nodes, 4096, 1000))
            .hasMessageContaining("not a doppel version-vector file");
    }
}
