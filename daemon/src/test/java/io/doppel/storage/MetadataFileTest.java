package io.doppel.storage;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class MetadataFileTest
{
    private static final long SIZE = 10L * (1 << 20) + 1; // a partial last block
    private static final int BLOCK = 4096;
    private static final long BLOCKS = (SIZE + BLOCK - 1) / BLOCK; // 2561

    @TempDir
    Path dir;

    private Path metaPath()
    {
        return dir.resolve("sub/dir/vm1.meta");
    }

    @Test
    void createLaysOutHeaderAndBitmap() throws IOException
    {
        final Path path = metaPath();
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.path()).isEqualTo(path);
            assertThat(meta.uuid()).isNotNull();
            assertThat(meta.dirtyMap().blockCount()).isEqualTo(BLOCKS);
            assertThat(meta.dirtyMap().blockSize()).isEqualTo(BLOCK);
            assertThat(meta.dirtyMap().dirtyBlocks()).isZero();
        }
        // header + bitmap rounded up to 4 KiB
        assertThat(Files.size(path)).isEqualTo(MetadataFile.HEADER_BYTES + 4096);
        final ByteBuffer header = readHeader(path);
        assertThat(header.get(0)).isEqualTo((byte)'D');
        assertThat(header.getInt(MetadataFile.VERSION_OFFSET)).isEqualTo(MetadataFile.FORMAT_VERSION);
        assertThat(header.getLong(MetadataFile.SIZE_OFFSET)).isEqualTo(SIZE);
        assertThat(header.getInt(MetadataFile.BLOCK_SIZE_OFFSET)).isEqualTo(BLOCK);
        assertThat(header.getInt(MetadataFile.CHECKSUM_OFFSET)).isEqualTo(MetadataFile.checksum(header));
    }

    @Test
    void reopenKeepsUuidAndBitmap() throws IOException
    {
        final Path path = metaPath();
        final UUID uuid;
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            uuid = meta.uuid();
            final DirtyMap map = meta.dirtyMap();
            map.mark(0);
            map.mark(63);
            map.mark(64);
            map.markBlocks(1000, 1100);
            map.mark(BLOCKS - 1);
            meta.flush();
        }
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.uuid()).isEqualTo(uuid);
            final DirtyMap map = meta.dirtyMap();
            assertThat(map.dirtyBlocks()).isEqualTo(104);
            assertThat(map.isDirty(0)).isTrue();
            assertThat(map.isDirty(1)).isFalse();
            assertThat(map.isDirty(63)).isTrue();
            assertThat(map.isDirty(64)).isTrue();
            assertThat(map.isDirty(65)).isFalse();
            assertThat(map.isDirty(999)).isFalse();
            assertThat(map.isDirty(1000)).isTrue();
            assertThat(map.isDirty(1099)).isTrue();
            assertThat(map.isDirty(1100)).isFalse();
            assertThat(map.isDirty(BLOCKS - 1)).isTrue();
            map.clearAll();
        }
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.uuid()).isEqualTo(uuid);
            assertThat(meta.dirtyMap().dirtyBlocks()).isZero();
        }
    }

    @Test
    void differentFilesGetDifferentUuids() throws IOException
    {
        try (MetadataFile a = MetadataFile.openOrCreate(dir.resolve("a.meta"), SIZE, BLOCK);
             MetadataFile b = MetadataFile.openOrCreate(dir.resolve("b.meta"), SIZE, BLOCK))
        {
            assertThat(a.uuid()).isNotEqualTo(b.uuid());
        }
    }

    @Test
    void reopenWithAnotherSizeFailsNamingBothValues() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        final long otherSize = SIZE + 8192;
        assertThatThrownBy(() -> MetadataFile.openOrCreate(path, otherSize, BLOCK))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("size=" + SIZE)
            .hasMessageContaining("size=" + otherSize);
    }

    @Test
    void reopenWithAnotherBlockSizeFailsNamingBothValues() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, 8192))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("block-size=4096")
            .hasMessageContaining("block-size=8192");
        // the refused open did not touch the file
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.dirtyMap().blockSize()).isEqualTo(BLOCK);
        }
    }

    @Test
    void corruptHeaderByteIsAChecksumMismatch() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        for (final int offset : new int[] {MetadataFile.UUID_OFFSET + 3, MetadataFile.SIZE_OFFSET, 1000,
            MetadataFile.CHECKSUM_OFFSET - 1, MetadataFile.CHECKSUM_OFFSET + 2})
        {
            final byte original = readHeader(path).get(offset);
            patch(path, offset, (byte)(original ^ 0x10));
            assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, BLOCK))
                .as("byte %d flipped", offset)
                .isInstanceOf(IOException.class)
                .hasMessageContaining("checksum mismatch");
            patch(path, offset, original);
        }
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
    }

    @Test
    void wrongMagicIsRefused() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        patch(path, 7, (byte)'X');
        assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, BLOCK))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("bad magic")
            .hasMessageContaining(path.toString());
    }

    @Test
    void aNonMetadataFileIsRefusedAndLeftAlone() throws IOException
    {
        final Path path = dir.resolve("notes.txt");
        Files.writeString(path, "hello");
        assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, BLOCK))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("bad magic");
        assertThat(Files.readString(path)).isEqualTo("hello");
    }

    @Test
    void wrongVersionIsRefusedEvenWithAValidChecksum() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        final ByteBuffer header = readHeader(path);
        header.putInt(MetadataFile.VERSION_OFFSET, 2);
        header.putInt(MetadataFile.CHECKSUM_OFFSET, MetadataFile.checksum(header));
        writeHeader(path, header);
        assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, BLOCK))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("version 2")
            .hasMessageContaining("not supported");
    }

    @Test
    void bitmapLayoutMismatchIsRefused() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        final ByteBuffer header = readHeader(path);
        header.putLong(MetadataFile.BITMAP_LENGTH_OFFSET, 8192);
        header.putInt(MetadataFile.CHECKSUM_OFFSET, MetadataFile.checksum(header));
        writeHeader(path, header);
        assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, BLOCK))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("bitmap layout");
    }

    @Test
    void truncatedFileIsRefused() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE))
        {
            ch.truncate(MetadataFile.HEADER_BYTES + 100);
        }
        assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, BLOCK))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("truncated");
    }

    @Test
    void headerAndValidateRoundTrip() throws IOException
    {
        final UUID uuid = UUID.randomUUID();
        final ByteBuffer header = MetadataFile.header(uuid, SIZE, BLOCK, 4096);
        assertThat(header.remaining()).isEqualTo(MetadataFile.HEADER_BYTES);
        assertThat(MetadataFile.validate(dir, header.duplicate(), SIZE, BLOCK, 4096)).isEqualTo(uuid);
        assertThatThrownBy(() -> MetadataFile.validate(dir, header.duplicate().limit(100), SIZE, BLOCK, 4096))
            .isInstanceOf(IOException.class).hasMessageContaining("bad magic");
    }

    @Test
    void anEmptyExistingFileIsInitialised() throws IOException
    {
        final Path path = Files.createFile(dir.resolve("empty.meta"));
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.dirtyMap().dirtyBlocks()).isZero();
        }
        assertThat(Files.size(path)).isEqualTo(MetadataFile.HEADER_BYTES + 4096);
    }

    // ------------------------------------------------------------------ helpers

    private static ByteBuffer readHeader(final Path path) throws IOException
    {
        final ByteBuffer b = ByteBuffer.allocate(MetadataFile.HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ))
        {
            ch.read(b, 0);
        }
        return b.flip();
    }

    private static void writeHeader(final Path path, final ByteBuffer header) throws IOException
    {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE))
        {
            ch.write(header.duplicate().clear(), 0);
        }
    }

    private static void patch(final Path path, final long offset, final byte value) throws IOException
    {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE))
        {
            ch.write(ByteBuffer.wrap(new byte[] {value}), offset);
        }
    }
}
