package io.doppel.fuzz;

import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * What the fuzz tests share: how many cases to run and from which seed, and a watch on the two ways a
 * hostile input can hurt a daemon without failing the call that fed it: a thread that dies of an uncaught
 * exception, and an exception that Netty only logs (one that reached the tail of a pipeline, a task that
 * threw on an event loop, a leaked buffer).
 *
 * <p>The default run is short so {@code mvn -B verify} stays fast. {@code -Dfuzz.iterations=N} runs every
 * fuzzer N times (per input kind), {@code -Dfuzz.seed=S} starts from another seed (the default is fixed,
 * so a CI failure reproduces; a failure message names the seed and the case).
 */
public final class Fuzz
{
    /** The seed every fuzzer derives its cases from. */
    public static final long SEED = Long.getLong("fuzz.seed", 0x0D0BBE1L);

    private Fuzz()
    {
    }

    /** Cases to run: {@code -Dfuzz.iterations} when given, else {@code quick} (the default CI budget). */
    public static int iterations(final int quick)
    {
        final Integer n = Integer.getInteger("fuzz.iterations");
        return n == null ? quick : Math.max(1, n);
    }

    /** When the last connection was opened: the fuzzers stay under [limits].connection-rate (100 a second). */
    private static long lastConnect;

    /** A loopback connection to {@code port}, opened at most one per 15 ms (the gate refuses more than 100 a second). */
    public static synchronized java.net.Socket connect(final int port) throws java.io.IOException
    {
        final long wait = lastConnect + 15_000_000L - System.nanoTime();
        if (wait > 0)
        {
            java.util.concurrent.locks.LockSupport.parkNanos(wait);
        }
        lastConnect = System.nanoTime();
        final java.net.Socket s = new java.net.Socket(java.net.InetAddress.getLoopbackAddress(), port);
        s.setSoTimeout(10_000);
        s.setTcpNoDelay(true);
        return s;
    }

    /**
     * Reads until the other side closes (or resets) the connection; returns the bytes read; fails, naming
     * {@code who}, if it keeps the connection open past {@code millis}.
     */
    public static long readUntilClosed(final java.net.Socket s, final int millis, final String who)
        throws java.io.IOException
    {
        s.setSoTimeout(millis);
        long total = 0;
        final byte[] chunk = new byte[65536];
        try
        {
            final java.io.InputStream in = s.getInputStream();
            int n;
            while ((n = in.read(chunk)) >= 0)
            {
                total += n;
            }
        }
        catch (final java.net.SocketTimeoutException e)
        {
            throw new AssertionError("the " + who + " kept the connection open " + millis + " ms after the input ("
                + total + " bytes received)");
        }
        catch (final java.net.SocketException e)
        {
            // reset: closed
        }
        return total;
    }

    /** Writes {@code data}; a daemon that already hung up (it refused an earlier frame) is not an error. */
    public static void writeQuietly(final java.net.Socket s, final byte[] data)
    {
        try
        {
            s.getOutputStream().write(data);
        }
        catch (final java.io.IOException e)
        {
            // the daemon hung up first: fine
        }
    }

    /** The readable bytes of {@code buf}, which is released. */
    public static byte[] bytes(final io.netty.buffer.ByteBuf buf)
    {
        try
        {
            final byte[] b = new byte[buf.readableBytes()];
            buf.readBytes(b);
            return b;
        }
        finally
        {
            buf.release();
        }
    }

    /** True when a longer run was asked for ({@code -Dfuzz.iterations}). */
    public static boolean longRun()
    {
        return Integer.getInteger("fuzz.iterations") != null;
    }

    /**
     * Collects uncaught exceptions of any thread and WARNING-or-worse records from Netty's loggers while
     * it is open. Netty logs through java.util.logging here (no SLF4J on the class path).
     */
    public static final class Watch implements AutoCloseable
    {
        private final List<String> problems = new ArrayList<>();
        private final Thread.UncaughtExceptionHandler previous;
        private final Logger netty = Logger.getLogger("io.netty");
        private final Handler handler = new Handler()
        {
            @Override
            public void publish(final LogRecord r)
            {
                if (r.getLevel().intValue() >= Level.WARNING.intValue())
                {
                    add("netty " + r.getLevel() + " " + r.getLoggerName() + ": " + r.getMessage()
                        + (r.getThrown() == null ? "" : " " + r.getThrown()));
                }
            }

            @Override
            public void flush()
            {
            }

            @Override
            public void close()
            {
            }
        };

        public Watch()
        {
            previous = Thread.getDefaultUncaughtExceptionHandler();
            Thread.setDefaultUncaughtExceptionHandler((t, e) ->
            {
                add("thread " + t.getName() + " died: " + e);
                if (previous != null)
                {
                    previous.uncaughtException(t, e);
                }
            });
            netty.addHandler(handler);
        }

        private synchronized void add(final String problem)
        {
            problems.add(problem);
        }

        /** What went wrong so far (empty when nothing). */
        public synchronized List<String> problems()
        {
            return new ArrayList<>(problems);
        }

        @Override
        public void close()
        {
            netty.removeHandler(handler);
            Thread.setDefaultUncaughtExceptionHandler(previous);
        }
    }
}
