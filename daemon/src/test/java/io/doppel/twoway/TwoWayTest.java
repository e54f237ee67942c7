package io.doppel.twoway;

import io.doppel.nbd.NbdTestSupport;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Two-way mode end to end: two daemons, each serving the volume read-write over NBD, both writing; the link
 * carries their writes both ways, and a partition's concurrent writes to the same block are resolved by the
 * later write on both sides, with the loser in each node's conflict log.
 */
class TwoWayTest
{
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @Test
    void bothNodesWriteDisjointRegionsConcurrentlyThroughNbdAndEndIdentical() throws Exception
    {
        Assumptions.assumeTrue(NbdTestSupport.toolExists("qemu-io"), "SKIPPED: qemu-io is not installed (apt install qemu-utils)");
        try (TwoWayPair pair = new TwoWayPair(dir, 64L << 20, BLOCK).start())
        {
            pair.awaitLinked(20);
            // Alpha writes the first half in 256 KiB requests, beta the second half, at the same time.
            final CompletableFuture<NbdTestSupport.ToolResult> onAlpha = CompletableFuture.supplyAsync(() -> qemuIo(pair.nbdUri("alpha"),
                0, 32 << 20, 0xa1));
            final CompletableFuture<NbdTestSupport.ToolResult> onBeta = CompletableFuture.supplyAsync(() -> qemuIo(pair.nbdUri("beta"),
                32 << 20, 32 << 20, 0xb2));
            for (final NbdTestSupport.ToolResult r : List.of(onAlpha.get(130, TimeUnit.SECONDS), onBeta.get(130, TimeUnit.SECONDS)))
            {
                assertThat(r.ok()).as(r.describe()).isTrue();
            }
            pair.awaitConverged(60);
            pair.a().flush();
            pair.b().flush();
            assertThat(sha256(pair.image("beta"))).as("beta's image equals alpha's").isEqualTo(sha256(pair.image("alpha")));
            final byte[] image = Files.readAllBytes(pair.image("alpha"));
            assertThat(allEqual(image, 0, 32 << 20, (byte)0xa1)).as("alpha's writes on both").isTrue();
            assertThat(allEqual(image, 32 << 20, 32 << 20, (byte)0xb2)).as("beta's writes on both").isTrue();
            assertThat(pair.a().status().conflicts()).isZero();
            assertThat(pair.b().status().conflicts()).isZero();
            assertThat(pair.a().status().appliedBlocks.get()).as("alpha applied beta's blocks").isEqualTo(8192);
            assertThat(pair.b().status().appliedBlocks.get()).as("beta applied alpha's blocks").isEqualTo(8192);
        }
    }

    @Test
    void partitionedWritesToTheSameBlocksAreWonByTheLaterWriteOnBothSidesAndLogged() throws Exception
    {
        try (TwoWayPair pair = new TwoWayPair(dir, 8L << 20, BLOCK).start())
        {
            pair.awaitLinked(20);
            for (int b = 0; b < 64; b++)
            {
                TwoWayPair.write(pair.a(), b, fill(0x11));
            }
            pair.awaitConverged(30);

            pair.proxy.cut();
            NbdTestSupport.awaitTrue(() -> !pair.a().state().connected() && !pair.b().state().connected(), 20,
                () -> "link never dropped");
            // alpha first on 0-9 (beta later: beta wins), beta first on 10-14 (alpha later: alpha wins);
            // 20-29 only alpha, 30-39 only beta.
            for (int b = 0; b < 10; b++)
            {
                TwoWayPair.write(pair.a(), b, fill(0xa0 + b));
            }
            for (int b = 20; b < 30; b++)
            {
                TwoWayPair.write(pair.a(), b, fill(0xa0));
            }
            for (int b = 10; b < 15; b++)
            {
                TwoWayPair.write(pair.b(), b, fill(0xb0 + b));
            }
            Thread.sleep(5); // the later writes get later stamps (one clock here; HLCs follow wall time)
            for (int b = 0; b < 10; b++)
            {
                TwoWayPair.write(pair.b(), b, fill(0xb0 + b));
            }
            for (int b = 30; b < 40; b++)
            {
                TwoWayPair.write(pair.b(), b, fill(0xb0));
            }
            for (int b = 10; b < 15; b++)
            {
                TwoWayPair.write(pair.a(), b, fill(0xa0 + b));
            }
            pair.proxy.restore();
            pair.awaitConverged(60);
            pair.a().flush();
            pair.b().flush();

            assertThat(sha256(pair.image("beta"))).isEqualTo(sha256(pair.image("alpha")));
            for (final TwoWayVolume v : List.of(pair.a(), pair.b()))
            {
                for (int b = 0; b < 10; b++)
                {
                    assertThat(TwoWayPair.read(v, b, BLOCK)).as(v + " block " + b + ": beta's later write").isEqualTo(fill(0xb0 + b));
                }
                for (int b = 10; b < 15; b++)
                {
                    assertThat(TwoWayPair.read(v, b, BLOCK)).as("block " + b + ": alpha's later write").isEqualTo(fill(0xa0 + b));
                }
                for (int b = 20; b < 30; b++)
                {
                    assertThat(TwoWayPair.read(v, b, BLOCK)).isEqualTo(fill(0xa0));
                }
                for (int b = 30; b < 40; b++)
                {
                    assertThat(TwoWayPair.read(v, b, BLOCK)).isEqualTo(fill(0xb0));
                }
                assertThat(TwoWayPair.read(v, 50, BLOCK)).isEqualTo(fill(0x11));
            }
            // Counts match. A conflict is resolved where the two versions meet: on both nodes when they cross on
            // the link, on one when a node gets the peer's version before sending its own (it then sends the
            // merged result, which the other applies). So: every node counts what it logged, and the logs of
            // both together hold every one of the 15 conflicting blocks, with the loser's bytes.
            final java.util.Set<Integer> conflicting = new java.util.TreeSet<>();
            for (final String node : List.of("alpha", "beta"))
            {
                final TwoWayVolume v = node.equals("alpha") ? pair.a() : pair.b();
                final List<ConflictLog.Conflict> logged = ConflictLog.read(dir.resolve(node).resolve("vm1.conflicts"), 4);
                assertThat((long)logged.size()).as(node + ": conflicts counted = conflicts logged")
                    .isEqualTo(v.status().conflicts());
                for (final ConflictLog.Conflict c : logged)
                {
                    final int b = (int)(c.offset() / BLOCK);
                    conflicting.add(b);
                    final byte[] loser = b < 10 ? fill(0xa0 + b) : fill(0xb0 + b);
                    assertThat(c.loserBytes()).as(node + ": the loser of block " + b).isEqualTo(loser);
                    assertThat(Long.compareUnsigned(c.winnerStamp(), c.loserStamp())).as("the winner is later").isPositive();
                }
                final Map<String, Object> listed = (node.equals("alpha") ? pair.alpha : pair.beta)
                    .runVerb("vm1", "conflicts", Map.of());
                assertThat(listed.get("count")).isEqualTo(v.status().conflicts());
                assertThat((List<?>)listed.get("conflicts")).hasSize(logged.size());
            }
            assertThat(conflicting).as("every conflicting block is logged").hasSize(15)
                .allMatch(b -> b < 15);
        }
    }

    static byte[] fill(final int value)
    {
        final byte[] b = new byte[BLOCK];
        Arrays.fill(b, (byte)value);
        return b;
    }

    private static boolean allEqual(final byte[] image, final int from, final int length, final byte value)
    {
        for (int i = from; i < from + length; i++)
        {
            if (image[i] != value)
            {
                return false;
            }
        }
        return true;
    }

    private static NbdTestSupport.ToolResult qemuIo(final String uri, final long offset, final long length,
        final int pattern)
    {
        final List<String> command = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (long at = offset; at < offset + length; at += 4L << 20)
        {
            command.addAll(List.of("-c", "write -P 0x" + Integer.toHexString(pattern) + " " + at + " " + (4L << 20)));
        }
        command.add(uri);
        return NbdTestSupport.run(120, command.toArray(new String[0]));
    }

    static String sha256(final Path file) throws Exception
    {
        final MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (InputStream in = Files.newInputStream(file))
        {
            final byte[] buf = new byte[1 << 20];
            for (int n; (n = in.read(buf)) > 0; )
            {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }
}
