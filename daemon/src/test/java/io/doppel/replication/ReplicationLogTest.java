package io.doppel.replication;

import io.doppel.config.VolumeConfig;
import io.doppel.pipeline.Compression;
import io.doppel.storage.DirtyMap;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The write path's bookkeeping without a link: what the dirty map and its in-flight bits say while
 * records are queued, taken and acknowledged — the state a killed process leaves behind.
 */
class ReplicationLogTest
{
    private static final long SIZE = 16L << 20;
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @Test
    void aBlockRewrittenBehindABacklogStaysDirtyWhenItsFirstRecordIsSentAndAcknowledged() throws Exception
    {
        try (Volume volume = Volume.open(dir.resolve("vm1.img"), SIZE);
             MetadataFile meta = MetadataFile.openOrCreate(dir.resolve("vm1.meta"), SIZE, BLOCK))
        {
            final ReplicationLog log = newLog(volume, meta);
            final DirtyMap map = meta.dirtyMap();
            assertThat(log.startLogging()).isZero();
            log.write(5L * BLOCK, ByteBuffer.wrap(new byte[] {1}));          // record 1: block 5
            log.write(9L * BLOCK, ByteBuffer.wrap(new byte[BLOCK * 2]));     // record 2: blocks 9, 10
            log.write(5L * BLOCK + 7, ByteBuffer.wrap(new byte[] {2}));      // record 3: block 5 again
            final long[] where = new long[3];
            final ByteBuf[] data = new ByteBuf[1];

            assertThat(log.take(0, where, data)).isTrue();                   // the sender takes record 1
            data[0].release();
            assertThat(map.isDirty(5)).as("record 3 still covers block 5").isTrue();
            assertThat(map.inFlightBlocks()).isEqualTo(1);
            // record 1's epoch is acknowledged and settled, as the sender does
            map.settleEpoch(map.switchEpoch());
            assertThat(map.inFlightBlocks()).isZero();
            assertThat(map.isDirty(5)).as("a crash now must still find block 5").isTrue();

            assertThat(log.take(0, where, data)).isTrue();                   // record 2
            data[0].release();
            assertThat(map.isDirty(9)).isFalse();
            assertThat(map.isDirty(10)).isFalse();
            assertThat(map.inFlightBlocks()).isEqualTo(2);
            assertThat(log.take(0, where, data)).isTrue();                   // record 3
            data[0].release();
            assertThat(map.isDirty(5)).isFalse();
            assertThat(map.dirtyBlocks()).isZero();
            assertThat(map.inFlightBlocks()).isEqualTo(3);
            // the link drops before the acknowledgement: everything in flight is dirty again
            assertThat(map.returnInFlight()).isEqualTo(3);
            assertThat(map.dirtyBlocks()).isEqualTo(3);
            log.stopLogging();
        }
    }

    @Test
    void anOverflowDropsTheCountsWithTheRecords() throws Exception
    {
        try (Volume volume = Volume.open(dir.resolve("vm1.img"), SIZE);
             MetadataFile meta = MetadataFile.openOrCreate(dir.resolve("vm1.meta"), SIZE, BLOCK))
        {
            final ReplicationLog log = newLog(volume, meta);
            assertThat(log.startLogging()).isZero();
            log.write(0, ByteBuffer.wrap(new byte[BLOCK]));
            log.stopLogging();                                               // records dropped, block 0 dirty
            meta.dirtyMap().claimRun(0, 100, 100, new int[1]);               // catch-up ships it
            meta.dirtyMap().settleEpoch(meta.dirtyMap().switchEpoch());
            assertThat(log.startLogging()).isPositive();
            log.write(0, ByteBuffer.wrap(new byte[BLOCK]));
            final long[] where = new long[3];
            final ByteBuf[] data = new ByteBuf[1];
            assertThat(log.take(0, where, data)).isTrue();
            data[0].release();
            assertThat(meta.dirtyMap().isDirty(0)).as("no stale count from the dropped record").isFalse();
            log.stopLogging();
        }
    }

    private static ReplicationLog newLog(final Volume volume, final MetadataFile meta)
    {
        final VolumeConfig config = new VolumeConfig("vm1", volume.path(), SIZE, VolumeConfig.Role.PRIMARY, "beta",
            BLOCK, Compression.fromConfig("none"), 1 << 20, null, VolumeConfig.Ack.ASYNC);
        meta.ensureGeneration();
        return new ReplicationLog(volume, meta, UnpooledByteBufAllocator.DEFAULT, 1 << 20, new VolumeState(config, SIZE),
            new AckTracker());
    }
}
