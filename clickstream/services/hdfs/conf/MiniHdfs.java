// One NameNode + one DataNode in this JVM, for local runs and tests.
// Usage: java -cp '<lib>/*' MiniHdfs.java <basedir> <bind address> <nn rpc port> <nn http port>
// Prints "READY hdfs://<address>:<port>" once the DataNode has registered, then runs until killed.
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

public class MiniHdfs {
    public static void main(String[] args) throws Exception {
        Configuration conf = new Configuration();
        conf.set("hdfs.minidfs.basedir", args[0]);
        conf.setBoolean("dfs.permissions.enabled", false);
        conf.set("dfs.namenode.rpc-bind-host", args[1]);
        conf.set("dfs.namenode.http-bind-host", args[1]);
        conf.set("dfs.datanode.address", args[1] + ":0");
        conf.set("dfs.datanode.http.address", args[1] + ":0");
        conf.set("dfs.datanode.ipc.address", args[1] + ":0");
        conf.setBoolean("dfs.datanode.use.datanode.hostname", false);
        conf.set("dfs.replication", "1");
        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf)
            .nameNodePort(Integer.parseInt(args[2]))
            .nameNodeHttpPort(Integer.parseInt(args[3]))
            .numDataNodes(1)
            .format(true)
            .build();
        cluster.waitActive();
        Runtime.getRuntime().addShutdownHook(new Thread(cluster::shutdown));
        System.out.println("READY hdfs://" + args[1] + ":" + args[2]);
        System.out.flush();
        Thread.currentThread().join();
    }
}
