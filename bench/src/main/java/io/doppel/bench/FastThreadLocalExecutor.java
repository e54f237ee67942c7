package io.doppel.bench;

import io.netty.util.concurrent.DefaultThreadFactory;

import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Runs JMH's benchmark threads as Netty {@code FastThreadLocalThread}s, selected with
 * {@code -Djmh.executor=CUSTOM -Djmh.executor.class=io.doppel.bench.FastThreadLocalExecutor}.
 *
 * <p>Why: Netty 4.2 recycles the pooled buffers' wrapper objects only on FastThreadLocalThreads, and the
 * daemon encodes and decodes frames only on such threads (event loops and the sender thread). On JMH's
 * plain worker threads every pooled buffer would cost ~120 bytes of garbage that production never sees.
 */
public final class FastThreadLocalExecutor extends ThreadPoolExecutor
{
    /** The constructor JMH's CUSTOM executor type calls. */
    public FastThreadLocalExecutor(final int maxThreads, final String prefix)
    {
        super(maxThreads, maxThreads, 1, TimeUnit.MINUTES, new LinkedBlockingQueue<>(),
            new DefaultThreadFactory(prefix, true));
    }
}
