/* common/protojson/testdata/manifests.c — see manifests.h. J() turns the JSON
 * tokens into one string literal, so the manifests read as JSON. */
#include "common/protojson/testdata/manifests.h"

#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

#define J(...) #__VA_ARGS__

// clang-format off

/* https://kubernetes.io/docs/concepts/workloads/controllers/deployment/ */
const char pj_deployment_json[] = J({
  "apiVersion": "apps/v1",
  "kind": "Deployment",
  "metadata": {
    "name": "nginx-deployment",
    "namespace": "default",
    "labels": {"app": "nginx"}
  },
  "spec": {
    "replicas": 3,
    "selector": {"matchLabels": {"app": "nginx"}},
    "strategy": {
      "type": "RollingUpdate",
      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}
    },
    "revisionHistoryLimit": 10,
    "template": {
      "metadata": {"labels": {"app": "nginx"}},
      "spec": {
        "containers": [{
          "name": "nginx",
          "image": "nginx:1.14.2",
          "imagePullPolicy": "IfNotPresent",
          "ports": [{"containerPort": 80, "protocol": "TCP"}],
          "resources": {
            "requests": {"memory": "64Mi", "cpu": "250m"},
            "limits": {"memory": "128Mi", "cpu": "500m"}
          }
        }]
      }
    }
  }
});

/* https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport */
const char pj_service_json[] = J({
  "apiVersion": "v1",
  "kind": "Service",
  "metadata": {"name": "my-service", "namespace": "default"},
  "spec": {
    "type": "NodePort",
    "selector": {"app.kubernetes.io/name": "MyApp"},
    "ports": [
      {"name": "web", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30007},
      {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "http"}
    ],
    "clusterIP": "10.96.0.12",
    "clusterIPs": ["10.96.0.12"],
    "ipFamilies": ["IPv4"],
    "ipFamilyPolicy": "SingleStack",
    "sessionAffinity": "None",
    "externalTrafficPolicy": "Cluster"
  }
});

/* https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/,
 * .../assign-pods-nodes-using-node-affinity/, taint-and-toleration/ */
const char pj_pod_json[] = J({
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {
    "name": "liveness-http",
    "namespace": "default",
    "uid": "6f1b1d2e-7c1a-4a52-9d7e-0c3e2f4b5a61",
    "resourceVersion": "12345",
    "generation": 3,
    "creationTimestamp": "2024-05-01T10:00:00Z",
    "labels": {"test": "liveness"},
    "annotations": {"kubernetes.io/description": "probes, env, tolerations"}
  },
  "spec": {
    "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "500Mi"}}],
    "containers": [
      {
        "name": "liveness",
        "image": "registry.k8s.io/e2e-test-images/agnhost:2.40",
        "args": ["liveness"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [
          {"name": "DEMO_GREETING", "value": "Hello from the environment"},
          {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        ],
        "resources": {"limits": {"cpu": "1", "memory": "128Mi"}},
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
        "livenessProbe": {
          "httpGet": {
            "path": "/healthz",
            "port": 8080,
            "httpHeaders": [{"name": "Custom-Header", "value": "Awesome"}]
          },
          "initialDelaySeconds": 3,
          "periodSeconds": 3
        },
        "readinessProbe": {
          "tcpSocket": {"port": "http"},
          "initialDelaySeconds": 15,
          "periodSeconds": 10
        }
      },
      {
        "name": "sidecar",
        "image": "registry.k8s.io/busybox",
        "command": ["/bin/sh", "-c", "touch /tmp/healthy; sleep 3600"],
        "livenessProbe": {
          "exec": {"command": ["cat", "/tmp/healthy"]},
          "initialDelaySeconds": 5,
          "periodSeconds": 5
        }
      }
    ],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "nodeSelector": {"disktype": "ssd"},
    "hostNetwork": true,
    "affinity": {
      "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
          "nodeSelectorTerms": [{
            "matchExpressions": [{
              "key": "topology.kubernetes.io/zone",
              "operator": "In",
              "values": ["antarctica-east1", "antarctica-west1"]
            }]
          }]
        },
        "preferredDuringSchedulingIgnoredDuringExecution": [{
          "weight": 1,
          "preference": {
            "matchExpressions": [{
              "key": "another-node-label-key",
              "operator": "In",
              "values": ["another-node-label-value"]
            }]
          }
        }]
      }
    },
    "tolerations": [
      {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
      {"key": "example-key", "operator": "Equal", "value": "value1", "effect": "NoExecute",
       "tolerationSeconds": 3600}
    ]
  }
});

/* kubectl get pod nginx -o json, trimmed to what Keel has. */
const char pj_pod_status_json[] = J({
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {
    "name": "nginx",
    "namespace": "default",
    "uid": "0b8d7c2e-3f4a-4e7b-8a1c-5d6e7f809a1b",
    "resourceVersion": "4821",
    "creationTimestamp": "2024-05-01T10:00:00Z",
    "ownerReferences": [{
      "apiVersion": "apps/v1",
      "kind": "ReplicaSet",
      "name": "nginx-7c5ddbdf54",
      "uid": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
      "controller": true,
      "blockOwnerDeletion": true
    }]
  },
  "spec": {
    "containers": [{"name": "nginx", "image": "nginx:1.25"}],
    "nodeName": "kind-worker",
    "schedulerName": "default-scheduler",
    "priority": 0
  },
  "status": {
    "phase": "Running",
    "conditions": [
      {"type": "Initialized", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"},
      {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:05Z"}
    ],
    "hostIP": "172.18.0.3",
    "podIP": "10.244.1.5",
    "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00:10:244:1::5"}],
    "startTime": "2024-05-01T10:00:00Z",
    "containerStatuses": [{
      "name": "nginx",
      "state": {"running": {"startedAt": "2024-05-01T10:00:03Z"}},
      "lastState": {
        "terminated": {
          "exitCode": 137,
          "reason": "OOMKilled",
          "startedAt": "2024-05-01T09:58:00Z",
          "finishedAt": "2024-05-01T09:59:59.250Z",
          "containerID": "containerd://1f2e3d4c5b6a"
        }
      },
      "ready": true,
      "restartCount": 2,
      "image": "docker.io/library/nginx:1.25",
      "imageID": "docker.io/library/nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
      "containerID": "containerd://9a8b7c6d5e4f",
      "started": true
    }],
    "qosClass": "BestEffort"
  }
});

/* kubectl get node kind-worker -o json, trimmed to what Keel has. */
const char pj_node_json[] = J({
  "apiVersion": "v1",
  "kind": "Node",
  "metadata": {
    "name": "kind-worker",
    "labels": {
      "kubernetes.io/arch": "amd64",
      "kubernetes.io/hostname": "kind-worker",
      "kubernetes.io/os": "linux"
    },
    "creationTimestamp": "2024-05-01T09:00:00Z"
  },
  "spec": {
    "podCIDR": "10.244.1.0/24",
    "podCIDRs": ["10.244.1.0/24"],
    "providerID": "kind://docker/kind/kind-worker",
    "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule",
                "timeAdded": "2024-05-01T09:00:00Z"}]
  },
  "status": {
    "capacity": {
      "cpu": "8",
      "ephemeral-storage": "263174212Ki",
      "hugepages-2Mi": "0",
      "memory": "32657496Ki",
      "pods": "110"
    },
    "allocatable": {
      "cpu": "7800m",
      "ephemeral-storage": "263174212Ki",
      "hugepages-2Mi": "0",
      "memory": "32555096Ki",
      "pods": "110"
    },
    "conditions": [
      {
        "type": "MemoryPressure",
        "status": "False",
        "lastHeartbeatTime": "2024-05-01T10:05:00Z",
        "lastTransitionTime": "2024-05-01T09:00:00Z",
        "reason": "KubeletHasSufficientMemory",
        "message": "kubelet has sufficient memory available"
      },
      {
        "type": "Ready",
        "status": "True",
        "lastHeartbeatTime": "2024-05-01T10:05:00Z",
        "lastTransitionTime": "2024-05-01T09:00:30Z",
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status"
      }
    ],
    "addresses": [
      {"type": "InternalIP", "address": "172.18.0.3"},
      {"type": "Hostname", "address": "kind-worker"}
    ],
    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
    "nodeInfo": {
      "machineID": "3b1e4c1f0b3d4f6c9d6a2b7e8f9a0b1c",
      "systemUUID": "4c4c4544-0039-3110-8051-b3c04f4a4e32",
      "bootID": "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e",
      "kernelVersion": "6.1.0-18-amd64",
      "osImage": "Debian GNU/Linux 12 (bookworm)",
      "containerRuntimeVersion": "containerd://1.7.13",
      "kubeletVersion": "v1.29.2",
      "kubeProxyVersion": "v1.29.2",
      "operatingSystem": "linux",
      "architecture": "amd64"
    }
  }
});

/* https://kubernetes.io/docs/tasks/administer-cluster/namespaces/ */
const char pj_namespace_json[] = J({
  "apiVersion": "v1",
  "kind": "Namespace",
  "metadata": {"name": "development", "labels": {"name": "development"}},
  "spec": {"finalizers": ["kubernetes"]},
  "status": {"phase": "Active"}
});

// clang-format on

const pj_manifest pj_manifests[] = {
    {"deployment", &keel__api__v1__deployment__descriptor, pj_deployment_json},
    {"service", &keel__api__v1__service__descriptor, pj_service_json},
    {"pod", &keel__api__v1__pod__descriptor, pj_pod_json},
    {"pod-status", &keel__api__v1__pod__descriptor, pj_pod_status_json},
    {"node", &keel__api__v1__node__descriptor, pj_node_json},
    {"namespace", &keel__api__v1__namespace__descriptor, pj_namespace_json},
};
const size_t pj_manifest_count = sizeof(pj_manifests) / sizeof(pj_manifests[0]);
