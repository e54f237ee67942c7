package io.doppel.nbd;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.nbd.NbdTestSupport.NodePair;
import io.doppel.nbd.NbdTestSupport.ToolResult;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static io.doppel.nbd.NbdTestSupport.run;
import static io.doppel.nbd.NbdTestSupport.toolExists;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * fio's nbd engine writes 32 MiB of checksummed 4 KiB blocks at random offsets, eight in flight, to the
 * primary export; once replicated, the same job in verify-only mode reads every block back from the
 * standby's read-only export and finds every checksum right. The same verification fails once a block
 * of the primary is overwritten behind fio's back, so a pass means something.
 */
class NbdFioTest
{
    private static final long SIZE = 64L << 20;
    private static final long JOB_BYTES = 32L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @Test
    void randomVerifiedWritesOnThePrimaryVerifyOnTheStandby() throws Exception
    {
        Assumptions.assumeTrue(toolExists("fio"), "SKIPPED: fio not installed (apt-get install fio)");
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 41);
        try (NodePair nodes = NodePair.start(cluster, false, false))
        {
            nodes.awaitInSync(60); // streaming first (writes during the sync: NbdFioTest)
            final Path writeJson = dir.resolve("write.json");
            final ToolResult write = run(120, job(nodes.primaryUri(), writeJson, false));
            final JsonNode w = job(write, writeJson);
            assertThat(write.exit()).as(write.describe()).isZero();
            assertThat(w.path("error").asInt(-1)).as("fio job error; " + w).isZero();
            assertThat(w.path("write").path("io_bytes").asLong()).as("bytes written; " + write.describe())
                .isEqualTo(JOB_BYTES);

            nodes.awaitInSync(60);

            final Path verifyJson = dir.resolve("verify.json");
            final ToolResult verify = run(120, job(nodes.standbyUri(), verifyJson, true));
            final JsonNode v = job(verify, verifyJson);
            assertThat(verify.exit()).as(verify.describe() + "\n" + v).isZero();
            assertThat(v.path("error").asInt(-1)).as("fio verify error on the standby; " + verify.describe())
                .isZero();
            assertThat(v.path("total_err").asInt(0)).as("fio total_err; " + v).isZero();
            assertThat(v.path("read").path("io_bytes").asLong()).as("bytes verified on the standby; "
                + verify.describe()).isEqualTo(JOB_BYTES);
            assertThat(verify.output()).as(verify.describe()).doesNotContain("verify: bad");

            // Negative control: one 4 KiB block of the primary overwritten behind fio's back, and the same
            // verification there fails at that block, so the pass above means something.
            try (RawNbdClient c = RawNbdClient.open(nodes.alphaNbdPort, "vm1"))
            {
                final byte[] junk = new byte[4096];
                java.util.Arrays.fill(junk, (byte)0x42);
                assertThat(c.simpleReply(c.request(0, RawNbdClient.CMD_WRITE, 5L << 20, junk.length, junk)))
                    .as("raw WRITE of the junk block").isZero();
            }
            final Path wrongJson = dir.resolve("wrong.json");
            final ToolResult wrong = run(120, job(nodes.primaryUri(), wrongJson, true));
            assertThat(wrong.exit()).as("verify after a block was overwritten must fail; " + wrong.describe())
                .isNotZero();
            assertThat(wrong.output()).as(wrong.describe()).contains("offset 5242880");
        }
    }

    /**
     * Random writes through NBD while the initial sync is copying the image: the sync must not send a DATA
     * frame whose payload disagrees with its own checksum (the standby rejects it and drops the link, and
     * the whole sync starts over). The standby ends up identical, over the one link it was given.
     */
    @Test
    void writesDuringTheInitialSyncKeepTheLink() throws Exception
    {
        Assumptions.assumeTrue(toolExists("fio"), "SKIPPED: fio not installed (apt-get install fio)");
        final long size = 96L << 20;
        final TestCluster cluster = new TestCluster(dir, size);
        MixedImage.create(cluster.alphaImage, size, 42); // the standby starts empty: most stripes must be sent
        try (NodePair nodes = NodePair.start(cluster, false, false))
        {
            final ToolResult write = run(60, "fio", "--name=during-sync", "--ioengine=nbd",
                "--uri=" + nodes.primaryUri(), "--rw=randwrite", "--bs=4k", "--size=96m", "--iodepth=16",
                "--time_based", "--runtime=3", "--output-format=terse");
            assertThat(write.exit()).as(write.describe()).isZero();
            nodes.awaitInSync(60);
            nodes.flushBoth();
            assertThat(MixedImage.hash(cluster.betaImage)).as("standby image").isEqualTo(
                MixedImage.hash(cluster.alphaImage));
            assertThat(nodes.primary().state().connects()).as("links made to the standby (more than one: the link"
                + " was dropped during the sync; the standby's last error: "
                + nodes.beta.standby("vm1").state().lastError() + ")").isEqualTo(1);
        }
    }

    private static String[] job(final String uri, final Path output, final boolean verifyOnly)
    {
        final List<String> cmd = new ArrayList<>(List.of("fio", "--name=w", "--ioengine=nbd", "--uri=" + uri,
            "--rw=randwrite", "--bs=4k", "--size=32m", "--iodepth=8", "--verify=crc32c", "--verify_state_save=0",
            "--output=" + output, "--output-format=json"));
        cmd.add(verifyOnly ? "--verify_only" : "--do_verify=0");
        return cmd.toArray(new String[0]);
    }

    /** The first job of fio's JSON report (fio may print warnings around it). */
    private static JsonNode job(final ToolResult result, final Path json) throws Exception
    {
        final String text = Files.exists(json) ? Files.readString(json) : "";
        final int start = text.indexOf('{');
        assertThat(start).as("no JSON report from fio in " + json + ": " + text + "\n" + result.describe())
            .isNotNegative();
        final JsonNode root = JSON.readTree(text.substring(start));
        final JsonNode job = root.path("jobs").path(0);
        assertThat(job.isMissingNode()).as("no job in fio's report: " + text + "\n" + result.describe()).isFalse();
        return job;
    }
}
