package io.doppel.replication;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Two nodes in one JVM over real loopback sockets: writes made through the primary's write API while it
 * syncs and streams end up byte-identical on the standby — with several writers, with every codec, when
 * the replication log overflows, and when the standby goes away and comes back.
 */
class StreamingReplicationTest
{
    private static final long SIZE = 64L << 20;

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"lz4", "zstd", "none"})
    void concurrentWritersDuringSyncAndStreamingConverge(final String compression) throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        cluster.compression = compression;
        MixedImage.create(cluster.alphaImage, SIZE, 5);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            final long written = writeConcurrently(vm1, 3, 1500);
            assertThat(written).isPositive();
            awaitInSync(vm1, 60);
            assertIdentical(cluster, alpha, beta);
            assertThat(vm1.state().bytesSent()).isPositive();
            assertThat(beta.standby("vm1").state().disk()).isEqualTo(VolumeState.Disk.UP_TO_DATE);
        }
    }

    @Test
    void logOverflowFallsBackToCatchUpAndConverges() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        cluster.logSize = "1MiB";
        MixedImage.create(cluster.alphaImage, SIZE, 6);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            awaitInSync(vm1, 60);
            // Bursts of 1 MiB writes without pause: more than a 1 MiB log can hold.
            final SplittableRandom random = new SplittableRandom(9);
            final byte[] chunk = new byte[1 << 20];
            for (int i = 0; i < 200; i++)
            {
                MixedImage.fill(chunk, chunk.length, false, random);
                vm1.write(random.nextLong(SIZE - chunk.length), ByteBuffer.wrap(chunk));
            }
            awaitInSync(vm1, 60);
            assertThat(vm1.state().logOverflows()).isPositive();
            assertIdentical(cluster, alpha, beta);
        }
    }

    @Test
    void outOfRangeWriteTouchesNothingAndStreamingGoesOn() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 8);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            awaitInSync(vm1, 60);
            final long lsnBefore = vm1.log().writes();
            // Straddles the end: must be refused whole, with no bit marked past (or before) the end.
            assertThatThrownBy(() -> vm1.write(SIZE - 100, ByteBuffer.allocate(4096)))
                .isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("outside volume");
            assertThatThrownBy(() -> vm1.writeZeroes(SIZE, 4096, true))
                .isInstanceOf(IndexOutOfBoundsException.class);
            assertThat(vm1.log().writes()).isEqualTo(lsnBefore);
            assertThat(vm1.dirtyBytes()).isZero();
            writeConcurrently(vm1, 2, 300);
            awaitInSync(vm1, 60);
            assertThat(vm1.state().logOverflows()).isZero();
            assertIdentical(cluster, alpha, beta);
        }
    }

    @Test
    void standbyThatGoesAwayCatchesUpWhenItReturns() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 7);
        try (DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig())))
            {
                awaitInSync(vm1, 60);
                writeConcurrently(vm1, 1, 300);
            }
            // The standby is gone: writes keep landing locally and are tracked as dirty.
            awaitTrue(() -> !vm1.state().connected(), 30);
            writeConcurrently(vm1, 2, 500);
            assertThat(vm1.dirtyBytes()).isPositive();
            assertThat(vm1.state().disk()).isIn(VolumeState.Disk.OUTDATED, VolumeState.Disk.INCONSISTENT);
            try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig())))
            {
                awaitInSync(vm1, 60);
                assertIdentical(cluster, alpha, beta);
                assertThat(vm1.state().connects()).isGreaterThanOrEqualTo(2);
            }
        }
    }

    /** Several threads write mixed content at random (also unaligned) offsets for {@code millis}. */
    static long writeConcurrently(final PrimaryVolume vm1, final int threads, final long millis)
        throws InterruptedException
    {
        final AtomicBoolean stop = new AtomicBoolean();
        final long[] written = new long[threads];
        final List<Thread> all = new ArrayList<>();
        for (int t = 0; t < threads; t++)
        {
            final int id = t;
            final Thread thread = new Thread(() ->
            {
                final SplittableRandom random = new SplittableRandom(100 + id);
                final byte[] chunk = new byte[200_000];
                while (!stop.get())
                {
                    final int length = 1 + random.nextInt(chunk.length);
                    final long offset = random.nextLong(vm1.size() - length);
                    MixedImage.fill(chunk, length, random.nextBoolean(), random);
                    if (random.nextInt(5) == 0)
                    {
                        java.util.Arrays.fill(chunk, 0, length, (byte)0);
                    }
                    vm1.write(offset, ByteBuffer.wrap(chunk, 0, length));
                    written[id] += length;
                    if (random.nextInt(8) == 0)
                    {
                        Thread.onSpinWait();
                        try
                        {
                            Thread.sleep(1);
                        }
                        catch (final InterruptedException e)
                        {
                            return;
                        }
                    }
                }
            });
            all.add(thread);
            thread.start();
        }
        Thread.sleep(millis);
        stop.set(true);
        long sum = 0;
        for (int t = 0; t < threads; t++)
        {
            all.get(t).join();
            sum += written[t];
        }
        return sum;
    }

    static void awaitInSync(final PrimaryVolume vm1, final int seconds) throws InterruptedException
    {
        awaitTrue(vm1::inSync, seconds, () -> "volume never in sync: " + vm1.state().replication() + ", disk "
            + vm1.state().disk() + ", dirty " + vm1.dirtyBytes() + ", log " + vm1.logBytes() + ", sent/acked " + vm1.state().sentSeq() + "/"
            + vm1.state().ackedSeq() + ", last error: " + vm1.state().lastError());
    }

    static void awaitTrue(final BooleanSupplier condition, final int seconds) throws InterruptedException
    {
        awaitTrue(condition, seconds, () -> "condition not met");
    }

    static void awaitTrue(final BooleanSupplier condition, final int seconds,
        final java.util.function.Supplier<String> why) throws InterruptedException
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean())
        {
            if (System.nanoTime() > deadline)
            {
                throw new AssertionError(why.get() + " within " + seconds + " s");
            }
            Thread.sleep(20);
        }
    }

    static void assertIdentical(final TestCluster cluster, final DoppelNode alpha, final DoppelNode beta)
        throws Exception
    {
        alpha.primary("vm1").flush();
        beta.standby("vm1").volume().flush();
        assertThat(MixedImage.hash(cluster.betaImage)).as("standby image hash")
            .isEqualTo(MixedImage.hash(cluster.alphaImage));
    }
}
