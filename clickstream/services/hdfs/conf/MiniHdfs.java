// One NameNode + N DataNodes in this JVM, for local runs and tests.
// Usage: java -cp '<lib>/*' MiniHdfs.java <basedir> <bind address> <nn rpc port> <nn http port>
//        [<datanodes> [<replication>]]   (defaults: 1 DataNode, replication min(3, datanodes))
// Formats the namespace only when <basedir> holds none yet, so the data stays across restarts.
// Prints "READY hdfs://<address>:<port>" once every DataNode has registered, then runs until killed.
import java.io.File;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

public class MiniHdfs {
    public static void main(String[] args) throws Exception {
        int dataNodes = args.length > 4 ? Integer.parseInt(args[4]) : 1;
        int replication = args.length > 5 ? Integer.parseInt(args[5]) : Math.min(3, dataNodes);
        // MiniDFSCluster keeps the first NameNode's metadata in <basedir>/name-0-1
        boolean fresh = !new File(args[0], "name-0-1/current/VERSION").exists();
        Configuration conf = new Configuration();
        conf.set("hdfs.minidfs.basedir", args[0]);
        conf.setBoolean("dfs.permissions.enabled", false);
        conf.set("dfs.namenode.rpc-bind-host", args[1]);
        conf.set("dfs.namenode.http-bind-host", args[1]);
        conf.set("dfs.datanode.address", args[1] + ":0");
        conf.set("dfs.datanode.http.address", args[1] + ":0");
        conf.set("dfs.datanode.ipc.address", args[1] + ":0");
        conf.setBoolean("dfs.datanode.use.datanode.hostname", false);
        conf.set("dfs.replication", Integer.toString(replication));
        // a restarted NameNode leaves safe mode as soon as its blocks are reported (default: 30 s later)
        conf.set("dfs.namenode.safemode.extension", "0");
        // close() returns once the last block is committed, before the DataNode reports it:
        // otherwise nearly every close loses the race with that report and the client sleeps
        // 400-500 ms before asking again. Allowed only with replication >= 2 (HDFS-8999).
        conf.set("dfs.namenode.file.close.num-committed-allowed", "1");
        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf)
            .nameNodePort(Integer.parseInt(args[2]))
            .nameNodeHttpPort(Integer.parseInt(args[3]))
            .numDataNodes(dataNodes)
            .format(fresh)
            .build();
        cluster.waitActive();
        cluster.waitClusterUp();
        Runtime.getRuntime().addShutdownHook(new Thread(cluster::shutdown));
        System.out.println("READY hdfs://" + args[1] + ":" + args[2] + (fresh ? " (formatted)" : " (existing namespace)"));
        System.out.flush();
        Thread.currentThread().join();
    }
}
