// Single-node OpenSearch for local development and tests, started by scripts/services.
// Run with the JDK's source-file launcher (java -cp CLASSPATH DetectorOpenSearch.java BASE PORT),
// so no compile step is needed. Needs JDK >= 21.
//
// Wraps org.codelibs.opensearch.runner.OpenSearchRunner (an embedded OpenSearch node with the
// standard modules on the classpath, no security plugin -> plain HTTP) but:
//   * lifts the runner's built-in http port ceiling (9299) so any port works;
//   * binds HTTP and transport to loopback only;
//   * applies the node settings below (single node, no disk-watermark read-only surprises).
import java.util.concurrent.CountDownLatch;

import org.codelibs.opensearch.runner.OpenSearchRunner;

public class DetectorOpenSearch {
    public static void main(final String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: DetectorOpenSearch BASE_PATH HTTP_PORT TRANSPORT_PORT");
            System.exit(64);
        }
        final String basePath = args[0];
        final int httpPort = Integer.parseInt(args[1]);
        final int transportPort = Integer.parseInt(args[2]);

        final OpenSearchRunner runner = new OpenSearchRunner() {
            {
                maxHttpPort = -1; // runner otherwise refuses ports above 9299
            }
        };
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (final Exception e) {
                System.err.println("close failed: " + e);
            } finally {
                stopped.countDown();
            }
        }, "detector-opensearch-shutdown"));

        runner.onBuild((index, settings) -> {
            settings.put("network.host", "127.0.0.1");
            settings.put("http.port", String.valueOf(httpPort));
            settings.put("transport.port", String.valueOf(transportPort));
            settings.put("discovery.type", "single-node");
            // A dev box with a nearly full disk must not flip indices to read-only.
            settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
        });
        try {
            runner.build("-basePath", basePath, "-numOfNode", "1", "-clusterName", "detector-dev",
                    "-baseHttpPort", String.valueOf(httpPort - 1));
        } catch (final Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("DetectorOpenSearch: node started, http=127.0.0.1:" + httpPort);
        stopped.await();
    }
}
