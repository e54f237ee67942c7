package io.doppel.nbd;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.TestCluster;
import io.doppel.tools.LoopbackPorts;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * Helpers for the NBD integration tests: real client tools run as processes, and an in-process pair of
 * nodes (alpha primary, beta standby) that both serve vm1 over NBD.
 */
/** What the NBD and two-way tests share: running outside tools, and waiting for a condition. */
public final class NbdTestSupport
{
    private NbdTestSupport()
    {
    }

    /** What a tool did: its exit code and its stdout and stderr, merged. */
    public record ToolResult(List<String> command, int exit, String output)
    {
        public boolean ok()
        {
            return exit == 0;
        }

        /** For assertion messages. */
        public String describe()
        {
            return "`" + String.join(" ", command) + "` exited " + exit + ", output:\n" + output;
        }
    }

    /** Whether {@code tool} is an executable on the PATH. */
    public static boolean toolExists(final String tool)
    {
        for (final String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":"))
        {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, tool)))
            {
                return true;
            }
        }
        return false;
    }

    /** Runs {@code command}, waits at most {@code seconds} (then kills it and fails). */
    public static ToolResult run(final int seconds, final String... command)
    {
        final Process p;
        try
        {
            p = new ProcessBuilder(command).redirectErrorStream(true).start();
        }
        catch (final IOException e)
        {
            throw new UncheckedIOException("cannot start " + String.join(" ", command), e);
        }
        try // no input: a tool that reads stdin sees EOF
        {
            p.getOutputStream().close();
        }
        catch (final IOException ignore)
        {
            // nothing to do
        }
        final CompletableFuture<String> out = new CompletableFuture<>();
        final Thread reader = new Thread(() -> out.complete(readAll(p.getInputStream())), "tool-output");
        reader.setDaemon(true);
        reader.start();
        try
        {
            if (!p.waitFor(seconds, TimeUnit.SECONDS))
            {
                p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                throw new AssertionError("`" + String.join(" ", command) + "` did not finish within " + seconds
                    + " s; output so far:\n" + out.getNow("(unavailable)"));
            }
            return new ToolResult(List.of(command), p.exitValue(), out.get(10, TimeUnit.SECONDS));
        }
        catch (final InterruptedException e)
        {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while running " + String.join(" ", command), e);
        }
        catch (final java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e)
        {
            throw new AssertionError("cannot read the output of " + String.join(" ", command), e);
        }
    }

    private static String readAll(final InputStream in)
    {
        try
        {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        catch (final IOException e)
        {
            return "(output unreadable: " + e + ")";
        }
    }

    static void awaitInSync(final PrimaryVolume vm1, final int seconds) throws InterruptedException
    {
        awaitTrue(vm1::inSync, seconds, () -> "volume never in sync: " + vm1.state().replication() + ", disk "
            + vm1.state().disk() + ", dirty " + vm1.dirtyBytes() + ", log " + vm1.logBytes() + ", sent/acked "
            + vm1.state().sentSeq() + "/" + vm1.state().ackedSeq() + ", last error: " + vm1.state().lastError());
    }

    public static void awaitTrue(final BooleanSupplier condition, final int seconds, final Supplier<String> why)
        throws InterruptedException
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

    /**
     * Alpha (primary) and beta (standby) in this JVM, both serving vm1 over NBD: on TCP loopback ports or
     * on Unix sockets in the test directory. The image files are the cluster's.
     */
    static final class NodePair implements AutoCloseable
    {
        final TestCluster cluster;
        final DoppelNode beta;
        final DoppelNode alpha;
        /** TCP port of the NBD server, or -1 on a Unix socket. */
        final int alphaNbdPort;
        final int betaNbdPort;
        final Path alphaSocket;
        final Path betaSocket;

        private NodePair(final TestCluster cluster, final DoppelNode beta, final DoppelNode alpha,
            final int alphaNbdPort, final int betaNbdPort, final Path alphaSocket, final Path betaSocket)
        {
            this.cluster = cluster;
            this.beta = beta;
            this.alpha = alpha;
            this.alphaNbdPort = alphaNbdPort;
            this.betaNbdPort = betaNbdPort;
            this.alphaSocket = alphaSocket;
            this.betaSocket = betaSocket;
        }

        /**
         * Starts beta then alpha over {@code cluster} (whose images the caller has prepared), with the
         * primary on a Unix socket when {@code alphaUnix}, the standby on one when {@code betaUnix}.
         */
        static NodePair start(final TestCluster cluster, final boolean alphaUnix, final boolean betaUnix)
            throws Exception
        {
            final int[] ports = LoopbackPorts.free(2);
            final Path alphaSocket = alphaUnix ? cluster.dir.resolve("alpha-nbd.sock") : null;
            final Path betaSocket = betaUnix ? cluster.dir.resolve("beta-nbd.sock") : null;
            cluster.alphaNbd = alphaUnix ? "unix:" + alphaSocket : "127.0.0.1:" + ports[0];
            cluster.betaNbd = betaUnix ? "unix:" + betaSocket : "127.0.0.1:" + ports[1];
            final DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
            final DoppelNode alpha;
            try
            {
                alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig()));
            }
            catch (final Exception e)
            {
                beta.close();
                throw e;
            }
            return new NodePair(cluster, beta, alpha, alphaUnix ? -1 : ports[0], betaUnix ? -1 : ports[1],
                alphaSocket, betaSocket);
        }

        PrimaryVolume primary()
        {
            return alpha.primary("vm1");
        }

        /** The primary's read-write export, as an NBD URI. */
        String primaryUri()
        {
            return uri(alphaNbdPort, alphaSocket);
        }

        /** The standby's read-only export, as an NBD URI. */
        String standbyUri()
        {
            return uri(betaNbdPort, betaSocket);
        }

        private static String uri(final int port, final Path socket)
        {
            return socket != null ? "nbd+unix:///vm1?socket=" + socket : "nbd://127.0.0.1:" + port + "/vm1";
        }

        void awaitInSync(final int seconds) throws InterruptedException
        {
            NbdTestSupport.awaitInSync(primary(), seconds);
        }

        /** Writes both copies back to their files, so the image files can be hashed or compared. */
        void flushBoth()
        {
            alpha.primary("vm1").flush();
            beta.standby("vm1").volume().flush();
        }

        @Override
        public void close()
        {
            try
            {
                alpha.close();
            }
            finally
            {
                beta.close();
            }
        }
    }
}
