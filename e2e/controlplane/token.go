package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func runToken(args []string) error {
	fs := pflag.NewFlagSet("token", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: controlplane token --kubeconfig FILE --namespace NS --serviceaccount SA [--duration 1h] [--create] [--cluster-admin]\n\n")
		fs.PrintDefaults()
	}
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig of the cluster (required)")
	namespace := fs.String("namespace", "default", "namespace of the ServiceAccount")
	serviceAccount := fs.String("serviceaccount", "", "name of the ServiceAccount (required)")
	duration := fs.Duration("duration", time.Hour, "requested token lifetime (the API's minimum is 10m)")
	create := fs.Bool("create", false, "create the namespace and ServiceAccount if missing")
	clusterAdmin := fs.Bool("cluster-admin", false, "bind the ServiceAccount to the cluster-admin ClusterRole")
	audiences := fs.StringSlice("audience", nil, "token audiences (default: the API server's own)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if *kubeconfig == "" || *serviceAccount == "" {
		fs.Usage()
		return fmt.Errorf("--kubeconfig and --serviceaccount are required")
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if *create {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: *namespace}}
		if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", *namespace, err)
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: *serviceAccount, Namespace: *namespace}}
		if err := retry(ctx, func() error {
			_, err := client.CoreV1().ServiceAccounts(*namespace).Create(ctx, sa, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}); err != nil {
			return fmt.Errorf("create serviceaccount %s/%s: %w", *namespace, *serviceAccount, err)
		}
	}

	if *clusterAdmin {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("controlplane-cluster-admin-%s-%s", *namespace, *serviceAccount)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: *serviceAccount, Namespace: *namespace}},
		}
		if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create clusterrolebinding %s: %w", crb.Name, err)
		}
	}

	seconds := int64(duration.Seconds())
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &seconds,
		Audiences:         *audiences,
	}}
	var token string
	if err := retry(ctx, func() error {
		resp, err := client.CoreV1().ServiceAccounts(*namespace).CreateToken(ctx, *serviceAccount, req, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		token = resp.Status.Token
		return nil
	}); err != nil {
		return fmt.Errorf("request token for %s/%s: %w", *namespace, *serviceAccount, err)
	}
	fmt.Println(token)
	return nil
}

// retry retries NotFound answers for a few seconds: a namespace or
// ServiceAccount created a moment ago may not be visible to every cache yet.
func retry(ctx context.Context, f func() error) error {
	var err error
	for i := 0; i < 20; i++ {
		if err = f(); err == nil || !apierrors.IsNotFound(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}
