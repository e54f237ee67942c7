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
    /** Two header copies, the activity log (1024 slots of 16 bytes), the map (41 groups of 32 bytes → 4 KiB). */
    private static final long EXPECTED_FILE_BYTES = MetadataFile.HEADERS_BYTES + 16384 + 4096;

    @TempDir
    Path dir;

    private static final ActivityLog.Eviction NO_EVICTION = recordingInto(new java.util.ArrayList<>());

    /** An eviction callback that records the extents it is asked to forget (verified or not). */
    private static ActivityLog.Eviction recordingInto(final java.util.List<Long> forgotten)
    {
        return new ActivityLog.Eviction()
        {
            @Override
            public void forget(final long extent)
            {
                forgotten.add(extent);
            }

            @Override
            public void forgetUnverified(final long extent)
            {
                forgotten.add(-extent - 1);
            }
        };
    }

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
        // two header copies + activity log + map rounded up to 4 KiB
        assertThat(Files.size(path)).isEqualTo(EXPECTED_FILE_BYTES);
        final ByteBuffer header = newestHeader(path);
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
    void corruptHeaderByteIsAChecksumMismatchOnlyWhenBothCopiesAreDamaged() throws IOException
    {
        final Path path = metaPath();
        final UUID uuid;
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            uuid = meta.uuid();
        }
        for (final int offset : new int[] {MetadataFile.UUID_OFFSET + 3, MetadataFile.SIZE_OFFSET, 1000,
            MetadataFile.CHECKSUM_OFFSET - 1, MetadataFile.CHECKSUM_OFFSET + 2})
        {
            // one torn copy: the other one is used
            final byte first = readHeader(path, 0).get(offset);
            patch(path, offset, (byte)(first ^ 0x10));
            try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
            {
                assertThat(meta.uuid()).isEqualTo(uuid);
            }
            // that open rewrote a copy; damage both now
            for (int copy = 0; copy < 2; copy++)
            {
                final long at = (long)copy * MetadataFile.HEADER_BYTES + offset;
                patch(path, at, (byte)(readByte(path, at) ^ 0x10));
            }
            assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, BLOCK))
                .as("byte %d flipped", offset)
                .isInstanceOf(IOException.class)
                .hasMessageContaining("checksum mismatch");
            for (int copy = 0; copy < 2; copy++)
            {
                final long at = (long)copy * MetadataFile.HEADER_BYTES + offset;
                patch(path, at, (byte)(readByte(path, at) ^ 0x10));
            }
            MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        }
    }

    @Test
    void generationsRoleAndCopyStateSurviveReopen() throws IOException
    {
        final Path path = metaPath();
        final long first;
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.currentGen()).isZero();
            assertThat(meta.disk()).isEqualTo(MetadataFile.Disk.UNKNOWN);
            meta.role(MetadataFile.ROLE_PRIMARY);
            meta.ensureGeneration();
            first = meta.currentGen();
            assertThat(first).isNotZero();
            meta.startTracking();
            assertThat(meta.bitmapGen()).isEqualTo(first);
            assertThat(meta.currentGen()).isNotEqualTo(first);
            assertThat(meta.knows(first)).isTrue();
            meta.startTracking(); // a second outage keeps the first base
            assertThat(meta.bitmapGen()).isEqualTo(first);
        }
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.openedClean()).isTrue();
            assertThat(meta.role()).isEqualTo(MetadataFile.ROLE_PRIMARY);
            assertThat(meta.bitmapGen()).isEqualTo(first);
            assertThat(meta.tracking()).isTrue();
            meta.peerInSync(first); // an old generation: the tracking base stays
            assertThat(meta.tracking()).isTrue();
            meta.peerInSync(meta.currentGen());
            assertThat(meta.tracking()).isFalse();
            meta.copyState(42, MetadataFile.Disk.INCONSISTENT);
        }
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.currentGen()).isEqualTo(42);
            assertThat(meta.disk()).isEqualTo(MetadataFile.Disk.INCONSISTENT);
            assertThat(meta.knows(first)).as("history keeps older generations").isTrue();
        }
    }

    @Test
    void aFileNotClosedIsAProcessCrashInTheSameBootAndAMachineCrashAfterForgetBoot() throws IOException
    {
        final Path path = metaPath();
        final MetadataFile dead = MetadataFile.openOrCreate(path, SIZE, BLOCK);
        dead.dirtyMap().markBlocks(0, 10);
        final int[] run = new int[1];
        dead.dirtyMap().claimRun(0, BLOCKS, 4, run); // 4 blocks in flight when "the process dies"
        // no close: the mapping stays as the page cache would keep it
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.openedClean()).isFalse();
            assertThat(meta.processCrashOnly()).isTrue();
            assertThat(meta.machineCrash()).isFalse();
            assertThat(meta.recoveredInFlight()).isEqualTo(4);
            assertThat(meta.dirtyMap().dirtyBlocks()).isEqualTo(10);
            meta.activityLog().beforeWrite(5L << 22, 100, 1, 0, NO_EVICTION); // extents 5..20 in one transaction
            meta.activityLog().beforeWrite((9L << 22) - 1, 2, 2, 0, NO_EVICTION); // touches 8 and 9: already listed
            assertThat(meta.activityLog().hotExtents()).isEqualTo(ActivityLog.PREFETCH);
            assertThat(meta.activityLog().transactions()).isEqualTo(1);
            meta.activityLog().beforeWrite(100L << 22, 1, 3, 0, NO_EVICTION);
            assertThat(meta.activityLog().transactions()).isEqualTo(2);
        }
        MetadataFile.forgetBoot(path, SIZE, BLOCK);
        // closed cleanly above, so not a crash at all
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.machineCrash()).isFalse();
            meta.activityLog().beforeWrite(5L << 22, 100, 1, 0, NO_EVICTION);
            meta.activityLog().beforeWrite(40L << 22, 100, 1, 0, NO_EVICTION);
            meta.close(false); // as a crash leaves it
        }
        MetadataFile.forgetBoot(path, SIZE, BLOCK);
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.machineCrash()).isTrue();
            assertThat(meta.alRecoveryPending()).isTrue();
            assertThat(meta.copyInDoubt()).isTrue();
            final java.util.List<Long> expected = new java.util.ArrayList<>();
            for (long e = 0; e < ActivityLog.PREFETCH; e++)
            {
                expected.add(5 + e);
                expected.add(40 + e);
            }
            assertThat(java.util.Arrays.stream(meta.activityLog().recoveredExtents()).boxed().toList())
                .containsExactlyInAnyOrderElementsOf(expected);
            assertThat(meta.activityLog().damaged()).isFalse();
        }
        // Restarted (cleanly, same boot) before any resync: the recovery is still owed, the extents kept.
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.machineCrash()).isFalse();
            assertThat(meta.alRecoveryPending()).isTrue();
            assertThat(meta.copyInDoubt()).isTrue();
            assertThat(meta.activityLog().recoveredExtents()).hasSize(2 * ActivityLog.PREFETCH).contains(5L, 40L);
            meta.alRecoveryDone();
            meta.copyState(9, MetadataFile.Disk.CONSISTENT);
            assertThat(meta.copyInDoubt()).isFalse();
        }
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.alRecoveryPending()).isFalse();
            assertThat(meta.activityLog().recoveredExtents()).isEmpty();
        }
    }

    @Test
    void aTornFirstUpdateOrAGarbageFirstCopyLeavesTheOtherCopy() throws IOException
    {
        final Path path = metaPath();
        final UUID uuid;
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            uuid = meta.uuid();
        }
        // copy 0 zeroed (torn, or never written): copy 1 still opens
        for (int i = 0; i < 64; i++)
        {
            patch(path, i, (byte)0);
        }
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.uuid()).isEqualTo(uuid);
        }
        // the newest copy torn: the older one is used
        final int newest = readHeader(path, 0).getLong(MetadataFile.SEQUENCE_OFFSET)
            > readHeader(path, 1).getLong(MetadataFile.SEQUENCE_OFFSET) ? 0 : 1;
        patch(path, (long)newest * MetadataFile.HEADER_BYTES + 200, (byte)0x77);
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.uuid()).isEqualTo(uuid);
        }
    }

    @Test
    void aNewFileSurvivesATornFirstUpdate() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close(false);
        // The file as creation left it had sequence 1 in copy 1; the first update (sequence 2) went to
        // copy 0. Tear copy 0: the creation header must still open.
        patch(path, 100, (byte)0x42);
        try (MetadataFile meta = MetadataFile.openOrCreate(path, SIZE, BLOCK))
        {
            assertThat(meta.uuid()).isNotNull();
            assertThat(meta.dirtyMap().dirtyBlocks()).isZero();
        }
    }

    @Test
    void activityLogEvictsOnlyAcknowledgedExtentsOrAsksTheCallerToForget() throws IOException
    {
        try (MetadataFile meta = MetadataFile.openOrCreate(metaPath(), 1L << 40, 1 << 20))
        {
            final ActivityLog al = meta.activityLog();
            final java.util.List<Long> forgotten = new java.util.ArrayList<>();
            for (long e = 0; e < MetadataFile.AL_SLOTS; e++)
            {
                al.beforeWrite(e << 22, 1, e + 1, 0, recordingInto(forgotten));
            }
            assertThat(al.hotExtents()).isEqualTo(MetadataFile.AL_SLOTS);
            assertThat(forgotten).isEmpty();
            // nothing acknowledged: the oldest extent must be forgotten by the caller
            al.beforeWrite(5000L << 22, 1, 5000, 0, recordingInto(forgotten));
            assertThat(forgotten).containsExactly(0L);
            // extents 1..10 acknowledged (lsn <= 11): the least recently used of them goes, silently
            al.beforeWrite(5001L << 22, 1, 5001, 11, recordingInto(forgotten));
            assertThat(forgotten).containsExactly(0L);
            assertThat(al.hotExtents()).isEqualTo(MetadataFile.AL_SLOTS);
            // a hot extent costs no transaction
            final long tx = al.transactions();
            al.beforeWrite(5001L << 22, 4096, 5002, 11, recordingInto(forgotten));
            assertThat(al.transactions()).isEqualTo(tx);
        }
    }

    @Test
    void wrongMagicIsRefused() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        patch(path, 7, (byte)'X');
        patch(path, MetadataFile.HEADER_BYTES + 7, (byte)'X');
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
        for (int copy = 0; copy < 2; copy++)
        {
            final ByteBuffer header = readHeader(path, copy);
            header.putInt(MetadataFile.VERSION_OFFSET, 1);
            header.putInt(MetadataFile.CHECKSUM_OFFSET, MetadataFile.checksum(header));
            writeHeader(path, header, copy);
        }
        assertThatThrownBy(() -> MetadataFile.openOrCreate(path, SIZE, BLOCK))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("version 1")
            .hasMessageContaining("not supported")
            .hasMessageContaining("move it away");
    }

    @Test
    void bitmapLayoutMismatchIsRefused() throws IOException
    {
        final Path path = metaPath();
        MetadataFile.openOrCreate(path, SIZE, BLOCK).close();
        for (int copy = 0; copy < 2; copy++)
        {
            final ByteBuffer header = readHeader(path, copy);
            header.putLong(MetadataFile.BITMAP_LENGTH_OFFSET, 8192);
            header.putInt(MetadataFile.CHECKSUM_OFFSET, MetadataFile.checksum(header));
            writeHeader(path, header, copy);
        }
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
        assertThat(Files.size(path)).isEqualTo(EXPECTED_FILE_BYTES);
    }

    // ------------------------------------------------------------------ helpers

    private static ByteBuffer readHeader(final Path path, final int copy) throws IOException
    {
        final ByteBuffer b = ByteBuffer.allocate(MetadataFile.HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ))
        {
            ch.read(b, (long)copy * MetadataFile.HEADER_BYTES);
        }
        return b.flip();
    }

    private static ByteBuffer newestHeader(final Path path) throws IOException
    {
        final ByteBuffer a = readHeader(path, 0);
        final ByteBuffer b = readHeader(path, 1);
        return a.getLong(MetadataFile.SEQUENCE_OFFSET) >= b.getLong(MetadataFile.SEQUENCE_OFFSET) ? a : b;
    }

    private static byte readByte(final Path path, final long at) throws IOException
    {
        final ByteBuffer b = ByteBuffer.allocate(1);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ))
        {
            ch.read(b, at);
        }
        return b.get(0);
    }

    private static void writeHeader(final Path path, final ByteBuffer header, final int copy) throws IOException
    {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE))
        {
            ch.write(header.duplicate().clear(), (long)copy * MetadataFile.HEADER_BYTES);
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
