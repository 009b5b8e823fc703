// Compatibility re-export: the loopback cluster and its helpers live in lab/ (lab/loopback.ts,
// lab/util.ts). New code imports lab/ directly; this file only keeps older imports compiling.
export { TestCluster, LoopbackCluster, startWriter, type ClusterOptions, type NodeHandle, type Writer } from '../../lab/loopback.ts';
export { PASSWORDS, REPO, httpStatus, postmasterPid, queryOnce, sleep, superuserClient, waitFor } from '../../lab/util.ts';
